/**
 * How a reprocess fill cuts the hunts into chunks and a chunk into lanes, by the hunts' sizes
 * (their event counts) rather than their number. Each lane reads its hunts' events through the
 * hunt index, and when hunts run at once their events share the heap's pages: a lane then reads
 * nearly every page of `events` whatever its share of the hunts, so the fill reads the table
 * about once per lane per chunk (experiments §66). Few chunks of a known size keep that down,
 * and keep a chunk's time about the same whether its hunts are small or big.
 */

export interface SizedHunt {
  huntId: string;
  /** Its event count, or an estimate: a wrong one makes a chunk bigger or smaller, never wrong. */
  events: number;
}

/** The first hunts of `hunts` (in order) whose events stay within `maxEvents`; at least one. */
export function takeChunk(hunts: readonly SizedHunt[], maxEvents: number): SizedHunt[] {
  const chunk: SizedHunt[] = [];
  let events = 0;
  for (const hunt of hunts) {
    if (chunk.length > 0 && events + hunt.events > maxEvents) break;
    chunk.push(hunt);
    events += hunt.events;
  }
  return chunk;
}

/**
 * Splits `hunts` into at most `lanes` contiguous, non-empty runs of near-equal event counts:
 * a run ends at the hunt that brings it closest to its share of the total.
 */
export function splitIntoLanes(hunts: readonly SizedHunt[], lanes: number): string[][] {
  const total = hunts.reduce((sum, hunt) => sum + hunt.events, 0);
  const runs: string[][] = [];
  let run: string[] = [];
  let events = 0;
  const moreRunsAllowed = () => runs.length + 1 < lanes;
  const endOfRun = () => (total * (runs.length + 1)) / lanes;
  for (const hunt of hunts) {
    // Closer to the run's share without this hunt than with it: the hunt starts the next run.
    if (run.length > 0 && moreRunsAllowed() && events + hunt.events - endOfRun() > endOfRun() - events) {
      runs.push(run);
      run = [];
    }
    run.push(hunt.huntId);
    events += hunt.events;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
