/**
 * Waits between tries of what fails until an outage passes (a commit, a position check, a
 * DLQ pass, a migration's lock): `firstMs`, doubling with each failure, at most `maxMs`.
 */

/** The wait after failure `attempt` (0 for the first): `firstMs` doubled `attempt` times, at most `maxMs`. */
export function backoffMs(attempt: number, firstMs: number, maxMs: number): number {
  return Math.min(maxMs, firstMs * 2 ** Math.min(attempt, 30));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A service not reachable at start-up is tried again after 1 s, doubling, at most every 30 s. */
const START_RETRY_FIRST_MS = 1_000;
const START_RETRY_MAX_MS = 30_000;

export interface StartupWait<T> {
  /** The error to stop start-up with (settings, refusals no wait cures), or undefined to wait and try again. */
  fatal(err: unknown): Promise<unknown> | unknown;
  /** Told of each wait before it begins, to log it. */
  onWait(err: unknown, attempt: number, retryInMs: number): void;
  /** Ends the wait, and an attempt in flight, with `signal.reason`. */
  signal?: AbortSignal;
  /** What becomes of an attempt that succeeds after `signal` ended the wait. */
  discard?(late: T): Promise<void>;
}

/**
 * Tries `connect` until it succeeds, waiting out an outage between tries. A process that
 * exited at start-up instead was restarted by its supervisor with a longer pause after each
 * exit (Kubernetes: up to 5 minutes), so it stayed down for minutes after the service was
 * back (`hunt ingest` for Kafka, `hunt worker` for Temporal).
 */
export async function connectAtStartup<T>(connect: () => Promise<T>, wait: StartupWait<T>): Promise<T> {
  const aborted = new Promise<never>((_, reject) => {
    const abort = () => reject(wait.signal?.reason);
    if (wait.signal?.aborted) abort();
    wait.signal?.addEventListener('abort', abort, { once: true });
  });
  aborted.catch(() => undefined);
  for (let attempt = 0; ; attempt++) {
    const connecting = connect();
    try {
      return await Promise.race([connecting, aborted]);
    } catch (err) {
      if (wait.signal?.aborted) {
        connecting.then((late) => wait.discard?.(late), () => undefined).catch(() => undefined);
        throw wait.signal.reason;
      }
      const fatal = await wait.fatal(err);
      if (fatal !== undefined) throw fatal;
      const retryInMs = backoffMs(attempt, START_RETRY_FIRST_MS, START_RETRY_MAX_MS);
      wait.onWait(err, attempt + 1, retryInMs);
      await Promise.race([sleep(retryInMs), aborted]);
    }
  }
}
