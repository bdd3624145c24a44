/**
 * isAppliedRecord on the real Postgres: the check after a join of whether the record before
 * the stored position is the one applied there. Whatever the record's bytes, it answers: a
 * record whose eventId Postgres cannot hold in text (a NUL byte) was never stored, and
 * asking for it failed the check on every try, holding its partition for good.
 */
import { describe, expect, it } from 'vitest';
import { classifySlice, MAX_KEPT_BYTES } from '../../src/pipeline/classify';
import { KeptBytesBudget, OVER_BUDGET_KEPT_BYTES } from '../../src/pipeline/kept-bytes-budget';
import { isAppliedRecord } from '../../src/store/hot-path/applied-record';
import { quarantineRecords } from '../../src/store/hot-path/quarantine';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { applyInOneTransaction } from '../helpers/stored-events';

const db = useTestDatabase();
const at = (value: string | null) => ({ offset: '7', value: value === null ? null : Buffer.from(value) });

describe('isAppliedRecord', () => {
  it('finds a stored event by its eventId, and answers no for records never stored, whatever their bytes', async () => {
    const event = clueFound({ eventId: 'stored-1' });
    await applyInOneTransaction(db.pool, [event]);
    expect(await isAppliedRecord(db.pool, 't', 0, at(JSON.stringify(event)))).toBe(true);
    expect(await isAppliedRecord(db.pool, 't', 0, at(JSON.stringify({ ...event, eventId: 'other' })))).toBe(false);
    // Bytes Postgres refuses in text (22021 on every try), a lone surrogate, an id too long, no JSON, no value.
    for (const eventId of ['a\u0000b', 'a\ud800b', 'x'.repeat(65)]) {
      expect(await isAppliedRecord(db.pool, 't', 0, at(JSON.stringify({ ...event, eventId })))).toBe(false);
    }
    expect(await isAppliedRecord(db.pool, 't', 0, at('{"eventId":'))).toBe(false);
    expect(await isAppliedRecord(db.pool, 't', 0, at(null))).toBe(false);
  });

  it('finds a reject quarantined whole, or with only its first bytes past the budget of kept bytes', async () => {
    const big = Buffer.alloc(2 * MAX_KEPT_BYTES, 0x7b);
    const budget = new KeptBytesBudget(MAX_KEPT_BYTES, () => 0); // one big reject kept whole, the next cut
    const slice = classifySlice('t-big', 0, [0, 1].map((i) => ({ offset: String(i), key: null, value: big, timestamp: '0' })), new Date(), undefined, budget);
    expect(slice.rejected.map((r) => r.value?.length)).toEqual([MAX_KEPT_BYTES, OVER_BUDGET_KEPT_BYTES]);
    await withTransaction(db.pool, (client) => quarantineRecords(client, slice.rejected));
    for (const offset of ['0', '1']) expect(await isAppliedRecord(db.pool, 't-big', 0, { offset, value: big })).toBe(true);
    // Another record at the offset is not taken for it.
    expect(await isAppliedRecord(db.pool, 't-big', 0, { offset: '1', value: Buffer.alloc(2 * MAX_KEPT_BYTES, 0x7c) })).toBe(false);
  });
});
