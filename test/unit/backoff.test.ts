import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../src/backoff';

describe('backoffMs', () => {
  it('starts at the first wait, doubles with each failure, and stops at the most', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((attempt) => backoffMs(attempt, 100, 5000))).toEqual([100, 200, 400, 800, 1600, 3200, 5000]);
    // However many failures: a finite wait, never Infinity.
    expect(backoffMs(10_000, 100, 5000)).toBe(5000);
  });
});
