/**
 * isAppliedRecord on the real Postgres: the check after a join of whether the record before
 * the stored position is the one applied there. Whatever the record's bytes, it answers: a
 * record whose eventId Postgres cannot hold in text (a NUL byte) was never stored, and
 * asking for it failed the check on every try, holding its partition for good.
 */
import { describe, expect, it } from 'vitest';
import { isAppliedRecord } from '../../src/store/hot-path/applied-record';
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
});
