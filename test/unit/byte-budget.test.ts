import { describe, expect, it } from 'vitest';
import { groupsWithin } from '../../src/byte-budget';

describe('groupsWithin', () => {
  it('keeps items in order, in groups within the budget, an item over it alone', () => {
    expect(groupsWithin([4, 4, 4, 20, 1], 10, (n) => n)).toEqual([[4, 4], [4], [20], [1]]);
    expect(groupsWithin([10, 0, 1], 10, (n) => n)).toEqual([[10, 0], [1]]);
    expect(groupsWithin([], 10, (n: number) => n)).toEqual([]);
  });

  it('also ends a group at maxItems items', () => {
    expect(groupsWithin([1, 1, 1, 1, 1], 10, (n) => n, 2)).toEqual([[1, 1], [1, 1], [1]]);
    expect(groupsWithin([4, 4, 4, 1], 10, (n) => n, 3)).toEqual([[4, 4], [4, 1]]);
  });
});
