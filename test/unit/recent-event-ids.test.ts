import { describe, expect, it } from 'vitest';
import { RecentEventIds } from '../../src/batch/backfill/recent-event-ids';

describe('RecentEventIds', () => {
  it('holds the latest eventIds with their first lane up to its capacity, forgetting the oldest first', () => {
    const recent = new RecentEventIds(3);
    recent.addAll([['a', 0], ['b', 1], ['c', 0]]);
    expect(['a', 'b', 'c', 'd'].map((id) => recent.laneOf(id))).toEqual([0, 1, 0, undefined]);
    // Known already: keeps its first lane, uses no slot, forgets nothing.
    recent.addAll([['b', 0]]);
    expect([recent.laneOf('a'), recent.laneOf('b')]).toEqual([0, 1]);
    recent.addAll([['d', 1], ['e', 0]]);
    expect(['a', 'b', 'c', 'd', 'e'].map((id) => recent.laneOf(id))).toEqual([undefined, undefined, 0, 1, 0]);
  });
});
