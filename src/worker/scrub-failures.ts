/**
 * What an activity's failure carries to Temporal (message, stack, causes) is kept in the
 * workflow's history, which everyone with Web UI access reads. Log lines and CLI output pass
 * through scrubSecrets; this puts failures through it too, as a last layer: a driver's
 * message may quote a host, a user or, in the worst case, a connection string.
 */
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { scrubSecrets } from '../redact';

/** Scrubs `err` and its causes in place (an Error's message and stack are writable). */
export function scrubFailure(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error) || depth > 10) return err;
  err.message = scrubSecrets(err.message);
  if (err.stack) err.stack = scrubSecrets(err.stack);
  scrubFailure(err.cause, depth + 1);
  return err;
}

export const scrubActivityFailures: ActivityInterceptorsFactory = () => ({
  inbound: {
    async execute(input, next) {
      try {
        return await next(input);
      } catch (err) {
        throw scrubFailure(err);
      }
    },
  },
});
