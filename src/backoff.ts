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
