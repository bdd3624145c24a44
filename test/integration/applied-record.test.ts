/**
 * isAppliedRecord on the real Postgres: the check after a join of whether the record before
 * the stored position is the one applied there. Whatever the record's bytes, it answers: a
 * record whose eventId Postgres cannot hold in text (a NUL byte) was never stored, and
 * asking for it failed the check on every try, holding its partition for good.
 */
import { describe, expect, it } from 'vitest';
import { quarantineRecords } from '../../src/store/hot-path/quarantine';
import { withTransaction } from '../../src/store/transaction';
import { MAX_KEPT_BYTES } from '../../src/pipeline/classify';
import { isAppliedRecord } from '../../src/store/hot-path/applied-record';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { applyInOneTransaction } from '../helpers/stored-events';

const db = useTestDatabase();
const at = (value: string | null, key: string | null = null) => ({ offset: '7', key: key === null ? null : Buffer.from(key), value: value === null ? null : Buffer.from(value) });

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
  it("finds a reject by its key's bytes as well as its value's: a new log's reject at the offset with the old one's value under another key is not the one applied", async () => {
    const reject = { topic: 'rejects', partition: 0, offset: '7', key: Buffer.from('a'), value: null, reason: 'invalid_json' as const, detail: 'a tombstone' };
    await withTransaction(db.pool, (client) => quarantineRecords(client, [reject], { copyToDlq: false }));
    expect(await isAppliedRecord(db.pool, 'rejects', 0, at(null, 'a'))).toBe(true);
    // Before, only the value was compared: the new log's records before this one were skipped unread.
    expect(await isAppliedRecord(db.pool, 'rejects', 0, at(null, 'b'))).toBe(false);
    expect(await isAppliedRecord(db.pool, 'rejects', 0, at(null))).toBe(false);
    // A key kept cut, as a reject's is: found by its first MAX_KEPT_BYTES.
    const long = Buffer.alloc(MAX_KEPT_BYTES + 10, 0x6b);
    await withTransaction(db.pool, (client) => quarantineRecords(client, [{ ...reject, offset: '8', key: long.subarray(0, MAX_KEPT_BYTES) }], { copyToDlq: false }));
    expect(await isAppliedRecord(db.pool, 'rejects', 0, { offset: '8', key: long, value: null })).toBe(true);
  });
});
