/**
 * The eventIds of a file import's latest chunks, in file order, each with the commit lane
 * that holds its first copy, so that a later chunk's plain insert can leave out the rows that
 * repeat one in the same lane (ImportPipeline's `plainInserts`).
 *
 * A lane commits its parts in order, so by the time a part commits, the first copy of each of
 * its repeats has been committed by the lane before it, or by a whole chunk every lane waited
 * for: stored, unless the database refused that row (then the lane, or after a whole chunk
 * every lane, stops leaving rows out). Bounded: the oldest are forgotten (an id
 * seen again is not refreshed), and a repeat of one of them goes to the store: the plain
 * insert meets it, and the part commits again the ordinary way.
 */

import { RecentMap } from '../../recent-map';

/** eventIds remembered: three chunks of the default 10,000 (2-6 MB). */
export const REMEMBERED_CHUNK_EVENT_IDS = 30_000;

export class RecentEventIds {
  private readonly lanes: RecentMap<number>;

  constructor(capacity = REMEMBERED_CHUNK_EVENT_IDS) {
    this.lanes = new RecentMap(capacity);
  }

  /** The lane of the first copy of `eventId`, if remembered. */
  laneOf(eventId: string): number | undefined {
    return this.lanes.get(eventId);
  }

  /** Remembers a chunk's eventIds (each once) with their lanes, forgetting the oldest beyond the capacity; an id known already keeps its first lane. */
  addAll(eventIds: Iterable<[string, number]>): void {
    for (const [id, lane] of eventIds) this.lanes.add(id, lane);
  }
}
