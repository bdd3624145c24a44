/** A Temporal client from configuration, for the CLI and tests. */
import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config';
import { explainTemporalError } from '../connection-hints';
import { temporalConnectionOptions } from './connection-options';

export async function connectClient(config: Config): Promise<{ client: Client; close: () => Promise<void> }> {
  const connection = await Connection.connect(temporalConnectionOptions(config)).catch((err: unknown) => {
    throw withHint(err, `could not connect to Temporal at ${config.temporal.address}`);
  });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}

/** The error with what to fix in front, when the cause is a TLS or credentials setting. */
export function withHint(err: unknown, what: string): Error {
  const hint = explainTemporalError(err);
  if (!hint) return err as Error;
  return new Error(`${what}: ${hint} (${(err as Error).message})`, { cause: err });
}
