/**
 * How batch work cuts hunts into groups by their sizes (their event counts) rather than their
 * number: reconcile's transactions, data quality's, and a reprocess fill's chunks and lanes. A
 * recompute reads all of a group's hunts' events, so a group's size in events, not in hunts,
 * bounds its time. For the fill there is a second reason: each lane reads its hunts' events
 * through the hunt index, and when hunts run at once their events share the heap's pages, so a
 * lane reads nearly every page of `events` whatever its share of the hunts; few chunks of a
 * known size keep those passes down (experiments §66).
 */

/**
 * A hunt with the events its recomputation reads: all it has stored, as the hot path counts
 * them (hunts.events_applied). An estimate: a wrong count (what reprocess repairs) makes a
 * group bigger or smaller, never its result wrong.
 */
export interface SizedHunt {
  huntId: string;
  events: number;
}

/** Whether `hunt` starts a new group after `group` of `events` events: the group is full, or the hunt would take it past `maxEvents`. */
function startsNewGroup(group: readonly SizedHunt[], events: number, hunt: SizedHunt, maxHunts: number, maxEvents: number): boolean {
  return group.length > 0 && (group.length >= maxHunts || events + hunt.events > maxEvents);
}

/**
 * Consecutive hunts in groups of at most `maxHunts` hunts and `maxEvents` events; a hunt
 * bigger than `maxEvents` makes a group of its own.
 */
export async function* groupsOf(hunts: AsyncIterable<SizedHunt> | Iterable<SizedHunt>, maxHunts: number, maxEvents: number): AsyncGenerator<SizedHunt[]> {
  let group: SizedHunt[] = [];
  let events = 0;
  for await (const hunt of hunts) {
    if (startsNewGroup(group, events, hunt, maxHunts, maxEvents)) {
      yield group;
      group = [];
      events = 0;
    }
    group.push(hunt);
    events += hunt.events;
  }
  if (group.length > 0) yield group;
}

/** The first group groupsOf would make of `hunts`: at least one hunt. */
export function firstGroup(hunts: readonly SizedHunt[], maxHunts: number, maxEvents: number): SizedHunt[] {
  const group: SizedHunt[] = [];
  let events = 0;
  for (const hunt of hunts) {
    if (startsNewGroup(group, events, hunt, maxHunts, maxEvents)) break;
    group.push(hunt);
    events += hunt.events;
  }
  return group;
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
