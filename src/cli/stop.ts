/**
 * How the long-running commands (`hunt ingest`, `hunt start`, `hunt produce`) stop. The
 * first SIGTERM or SIGINT starts a graceful stop: commit what is buffered, leave the group.
 * A second signal, of either kind, exits at once. A graceful stop that has not finished
 * within its deadline (Postgres or Kafka not answering) exits anyway, non-zero, so a
 * supervisor restarts the process instead of waiting on it: nothing is lost, since what was
 * not committed is read again by whoever reads the partitions next.
 */
import type { Logger } from '../log';
import { TimeoutError, withTimeout } from '../time-limit';

/** Under the 30 s a supervisor commonly waits before it kills (Kubernetes, systemd's default 90 s). */
export const STOP_DEADLINE_MS = 25_000;

const EXIT_CODES: Record<'SIGTERM' | 'SIGINT', number> = { SIGINT: 130, SIGTERM: 143 };

/** Resolves on the first SIGTERM or SIGINT; a second one of either exits at once (128 + its number). */
export function untilSignal(logger: Pick<Logger, 'info'>): Promise<void> {
  return new Promise((resolve) => {
    const graceful = (signal: NodeJS.Signals) => {
      // Both, not only the one received: a supervisor's SIGTERM then an operator's Ctrl-C must exit.
      process.off('SIGTERM', graceful);
      process.off('SIGINT', graceful);
      for (const next of ['SIGTERM', 'SIGINT'] as const) process.once(next, () => process.exit(EXIT_CODES[next]));
      logger.info(`${signal}: finishing the batch in flight, then leaving (a second SIGTERM or SIGINT exits at once)`);
      resolve();
    };
    process.once('SIGTERM', graceful);
    process.once('SIGINT', graceful);
  });
}

/** What a stop past its deadline leaves undone, by default the hot path's. */
const INGEST_STOP_LATE = 'the graceful stop did not finish in time (Postgres or Kafka not answering); exiting with records uncommitted, which the next run reads again';

/** Runs a graceful `stop`; past `deadlineMs`, says so (`late`: what is left undone, and why) and exits with 1. */
export async function stopWithin(
  stop: () => Promise<void>,
  logger: Pick<Logger, 'error'>,
  { deadlineMs = STOP_DEADLINE_MS, late = INGEST_STOP_LATE }: { deadlineMs?: number; late?: string } = {},
): Promise<void> {
  try {
    await withTimeout(stop(), deadlineMs);
  } catch (err) {
    if (!(err instanceof TimeoutError)) throw err;
    logger.error({ deadlineMs }, late);
    process.exit(1);
  }
}
