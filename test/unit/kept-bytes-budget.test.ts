/**
 * The consumer's budget of rejected bytes kept whole (kept-bytes-budget.ts): compressed
 * records that unpack to a megabyte each made a producer's every megabyte some 64 in
 * quarantine and the DLQ. Past the budget a reject keeps its first bytes only, and says so;
 * small rejects, all that honest traffic makes, are always kept whole.
 */
import { describe, expect, it } from 'vitest';
import { classifySlice, MAX_KEPT_BYTES } from '../../src/pipeline/classify';
import { KEPT_BYTES_PER_MINUTE, KeptBytesBudget, OVER_BUDGET_KEPT_BYTES } from '../../src/pipeline/kept-bytes-budget';

const MiB = 1024 * 1024;

describe('KeptBytesBudget', () => {
  it('gives up to its minute\'s worth, then refills evenly, never past a minute\'s worth', () => {
    let now = 0;
    const budget = new KeptBytesBudget(60 * MiB, () => now);
    expect(budget.take(50 * MiB)).toBe(true);
    expect(budget.take(20 * MiB)).toBe(false); // 10 MiB left: refused, nothing taken
    expect(budget.take(10 * MiB)).toBe(true);
    expect(budget.take(1)).toBe(false);
    now += 5_000; // 5 s: 5 MiB back
    expect(budget.take(5 * MiB + 1)).toBe(false);
    expect(budget.take(5 * MiB)).toBe(true);
    now += 3_600_000; // an hour idle still holds one minute's worth
    expect(budget.take(60 * MiB)).toBe(true);
    expect(budget.take(1)).toBe(false);
  });
});

describe('classifySlice with a budget of kept bytes', () => {
  it('keeps big rejects whole within the budget, only their first bytes past it (saying so), and small ones always whole', () => {
    const big = Buffer.alloc(3 * MiB, 0x7b); // unpacked past any limit: too_large
    const records = [
      ...Array.from({ length: 20 }, (_, i) => ({ offset: String(i), key: Buffer.from('hunt-1'), value: big, timestamp: '0' })),
      { offset: '20', key: Buffer.from('hunt-1'), value: Buffer.from('{"eventId":'), timestamp: '0' },
    ];
    const slice = classifySlice('hunt.events', 0, records, new Date(), undefined, new KeptBytesBudget(KEPT_BYTES_PER_MINUTE, () => 0));
    const whole = Math.floor(KEPT_BYTES_PER_MINUTE / (MAX_KEPT_BYTES + 'hunt-1'.length));
    expect(slice.rejected.map((r) => r.value?.length)).toEqual([
      ...Array.from({ length: whole }, () => MAX_KEPT_BYTES),
      ...Array.from({ length: 20 - whole }, () => OVER_BUDGET_KEPT_BYTES),
      '{"eventId":'.length,
    ]);
    expect(slice.rejected[0]?.detail).toMatch(new RegExp(`^value of ${3 * MiB} bytes, only its first ${MAX_KEPT_BYTES} kept; `));
    expect(slice.rejected[19]?.detail).toMatch(
      new RegExp(`^value of ${3 * MiB} bytes, only its first ${OVER_BUDGET_KEPT_BYTES} kept \\(the consumer's budget for rejected bytes, 16 MiB a minute, was spent\\); `),
    );
    expect(slice.rejected[20]).toMatchObject({ reason: 'invalid_json', value: Buffer.from('{"eventId":') });
    // Without a budget (a backfill of the operator's own files), as before.
    expect(classifySlice('hunt.events', 0, records, new Date()).rejected.slice(0, 20).every((r) => r.value?.length === MAX_KEPT_BYTES)).toBe(true);
  });
});
