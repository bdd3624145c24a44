import { describe, expect, it } from 'vitest';
import { RecentEventIds } from '../../src/batch/backfill/recent-event-ids';

describe('RecentEventIds', () => {
  it('holds the latest eventIds up to its capacity, forgetting the oldest first, each id once', () => {
    const recent = new RecentEventIds(3);
    recent.addAll(['a', 'b', 'c']);
    expect(['a', 'b', 'c', 'd'].map((id) => recent.has(id))).toEqual([true, true, true, false]);
    // Known already: no slot used, nothing forgotten.
    recent.addAll(['b']);
    expect(recent.has('a')).toBe(true);
    recent.addAll(['d', 'e']);
    expect(['a', 'b', 'c', 'd', 'e'].map((id) => recent.has(id))).toEqual([false, false, true, true, true]);
  });
});
