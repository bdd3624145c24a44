/**
 * A bad job input shown in its failure message: cut short, and never a failure of its own.
 */
import { describe, expect, it } from 'vitest';
import { shown } from '../../src/temporal/shown-value';

describe('shown', () => {
  it('cuts a long value short and shows one nested deeper than the stack without throwing', () => {
    expect(shown('x'.repeat(500))).toMatch(/^"x{199}… \(502 characters\)$/);
    // What JSON.parse gives back from 200 KB of brackets: JSON.stringify overflows on it.
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    expect(() => JSON.stringify(deep)).toThrow(RangeError);
    expect(shown(deep)).toBe('(a value nested too deeply to show)');
  });
});
