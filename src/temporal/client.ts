/** A Temporal client from configuration, for the CLI and tests. */
import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config';
import { ConnectionSettingsError, explainTemporalError } from '../connection-hints';
import { temporalConnectionOptions } from './connection-options';
import { probeTemporalTls } from './tls-probe';

export async function connectClient(config: Config): Promise<{ client: Client; close: () => Promise<void> }> {
  const connection = await Connection.connect(temporalConnectionOptions(config)).catch(async (err: unknown) => {
    throw await withHint(err, config, `could not connect to Temporal at ${config.temporal.address}`);
  });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}

/**
 * The error with what to fix in front, when the cause is a TLS or credentials setting:
 * from the error itself, else from a handshake of our own (the SDK's errors often hide it).
 */
export async function withHint(err: unknown, config: Pick<Config, 'temporal'>, what: string): Promise<Error> {
  const hint = explainTemporalError(err) ?? explainTemporalError(await probeTemporalTls(config).catch(() => undefined));
  if (!hint) return err as Error;
  return new ConnectionSettingsError(`${what}: ${hint} (${(err as Error).message})`, { cause: err });
}

/**
 * A connection the network refused, cut or never made (refused, reset, broken, no route, no
 * DNS answer, timed out), or a server not serving yet (gRPC UNAVAILABLE: a frontend starting,
 * a proxy with no healthy upstream). The worker's core reports the first kind as a
 * TransportError naming the cause. Not what Temporal refused (credentials, TLS), which
 * withHint explains; callers ask it first.
 */
export function isTemporalUnreachable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if ((err as { code?: unknown }).code === GRPC_UNAVAILABLE || /currently unavailable/i.test(err.message)) return true;
  return err.name === 'TransportError' && /ConnectError|tcp connect error|dns error|timed? ?out|ConnectionReset|BrokenPipe|ConnectionAborted|transport error/i.test(err.message);
}

const GRPC_UNAVAILABLE = 14;
