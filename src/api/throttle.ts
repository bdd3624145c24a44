/**
 * Rate limits for the read API's own reactions to load: log lines and expensive probes.
 * A flood of requests must not turn into a flood of log lines or of queries.
 */

/**
 * Wraps `report` so it runs at most once per `intervalMs`; calls in between are counted,
 * and the next report receives how many calls it stands for.
 */
export function everyFewSeconds<A extends unknown[]>(report: (count: number, ...args: A) => void, intervalMs = 10_000): (...args: A) => void {
  let last = -Infinity;
  let skipped = 0;
  return (...args: A) => {
    const now = performance.now();
    if (now - last < intervalMs) {
      skipped++;
      return;
    }
    last = now;
    const count = skipped + 1;
    skipped = 0;
    report(count, ...args);
  };
}

/**
 * One answer shared by every caller while it is being computed, and reused for `reuseMs`
 * after: a thousand /readyz requests at once cost one probe, not a thousand.
 */
export function sharedProbe<T>(probe: () => Promise<T>, reuseMs: number): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  let last: { at: number; value: T } | undefined;
  return () => {
    if (last && performance.now() - last.at < reuseMs) return Promise.resolve(last.value);
    inFlight ??= probe()
      .then((value) => {
        last = { at: performance.now(), value };
        return value;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
}
