/**
 * A quarantined record still invalid when replayed takes the reason (and detail) it fails
 * for today (src/store/correctness/dlq-replay.ts). Before, only replayed rows were written:
 * an `unknown_type` record whose type exists now but whose payload breaks its schema kept
 * `unknown_type`, so a replay of `schema_violation` never picked it, and the gauges counted it
 * under the old reason. Its DLQ copy is not sent again for it.
 */
import { describe, expect, it } from 'vitest';
import { classifyRecord } from '../../src/events/validate';
import { replayBatch } from '../../src/store/correctness/dlq-replay';
import { pendingCopies } from '../../src/store/hot-path/dlq-outbox';
import { quarantineRecords, type RejectedRecord } from '../../src/store/hot-path/quarantine';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';

const db = useTestDatabase();
const TOPIC = 'reason.events';

interface Row {
  source_offset: string;
  reason: string;
  detail: string;
  dlq_pending: boolean;
  sent: boolean;
  replayed: boolean;
}

async function rowsByOffset(): Promise<Map<string, Row>> {
  const { rows } = await db.pool.query<Row>(
    `SELECT source_offset::text, reason, detail, dlq_pending, dlq_sent_at IS NOT NULL AS sent, replayed_at IS NOT NULL AS replayed
       FROM quarantine WHERE source_topic = $1`,
    [TOPIC],
  );
  return new Map(rows.map((r) => [r.source_offset, r]));
}

const reject = (offset: number, reason: RejectedRecord['reason'], value: Buffer): RejectedRecord => ({
  topic: TOPIC,
  partition: 0,
  offset: String(offset),
  key: Buffer.from('hunt-1'),
  value,
  reason,
  detail: `as quarantined ${offset}`,
});

describe('dlqReplay of records still invalid', () => {
  it('gives them the reason and detail they fail for now, and copies none to the DLQ again', async () => {
    const now = new Date();
    // A type unknown when quarantined, known now, with a payload its schema refuses.
    const broken = Buffer.from(JSON.stringify({ ...clueFound({ eventId: 'broken', huntId: 'hr' }), payload: { clueId: 'c1', points: -1 } }));
    const brokenToo = Buffer.from(JSON.stringify({ ...clueFound({ eventId: 'broken-too', huntId: 'hr' }), payload: { clueId: 'c2', points: -2 } }));
    const notJson = Buffer.from('not json');
    await withTransaction(db.pool, (client) =>
      quarantineRecords(
        client,
        [
          reject(1, 'unknown_type', broken), // its DLQ copy sent already
          reject(2, 'unknown_type', brokenToo), // its copy still waits
          reject(3, 'invalid_json', notJson), // the same reason as before
          reject(4, 'unreadable', notJson), // a compressed batch's bytes, not one record
        ],
        { copyToDlq: true },
      ),
    );
    await db.pool.query(`UPDATE quarantine SET dlq_pending = false, dlq_sent_at = now() WHERE source_topic = $1 AND source_offset = 1`, [TOPIC]);
    const expected = classifyRecord(broken, now);
    if (expected.ok || expected.reason !== 'schema_violation') throw new Error('the test record should break its schema');

    // A dry run changes nothing.
    expect(await replayBatch(db.pool, {}, 0, 100, true, { now })).toMatchObject({ examined: 4, stillInvalid: { schema_violation: 2, invalid_json: 2 } });
    expect((await rowsByOffset()).get('1')).toMatchObject({ reason: 'unknown_type', detail: 'as quarantined 1' });

    expect(await replayBatch(db.pool, {}, 0, 100, false, { now })).toMatchObject({ examined: 4, replayed: 0, stillInvalid: { schema_violation: 2, invalid_json: 2 } });
    const rows = await rowsByOffset();
    expect(rows.get('1')).toEqual({ source_offset: '1', reason: 'schema_violation', detail: expected.detail, dlq_pending: false, sent: true, replayed: false });
    expect(rows.get('2')).toMatchObject({ reason: 'schema_violation', detail: expect.stringMatching(/points/), dlq_pending: true, sent: false });
    // Unchanged: a row whose reason still holds keeps its detail, an unreadable row its reason.
    expect(rows.get('3')).toMatchObject({ reason: 'invalid_json', detail: 'as quarantined 3' });
    expect(rows.get('4')).toMatchObject({ reason: 'unreadable', detail: 'as quarantined 4' });
    // The copy sent already waits for no send again; the one not sent yet still does.
    expect((await pendingCopies(db.pool, TOPIC)).count).toBe(3);

    // A replay of schema_violation now picks them.
    expect(await replayBatch(db.pool, { reasons: ['schema_violation'] }, 0, 100, false, { now })).toMatchObject({ examined: 2, stillInvalid: { schema_violation: 2 } });
    expect(await replayBatch(db.pool, { reasons: ['unknown_type'] }, 0, 100, false, { now })).toBeUndefined();
  });

  it('gives a record valid now that the database still refuses the reason unprocessable, with the database’s words', async () => {
    const value = Buffer.from(JSON.stringify(clueFound({ eventId: 'refused-now', huntId: 'refused-hunt-r' })));
    const afterId = (await db.pool.query<{ id: number }>('SELECT coalesce(max(id), 0)::int AS id FROM quarantine')).rows[0]?.id ?? 0;
    await withTransaction(db.pool, (client) => quarantineRecords(client, [reject(10, 'unknown_type', value)], { copyToDlq: false }));
    await db.pool.query(`CREATE FUNCTION refuse_reason_hunt() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.hunt_id = 'refused-hunt-r' THEN RAISE EXCEPTION 'refused (a test fault)'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER refuse_reason_hunt BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_reason_hunt()');
    try {
      expect(await replayBatch(db.pool, { reasons: ['unknown_type'] }, afterId, 100, false)).toMatchObject({ examined: 1, replayed: 0, stillInvalid: { unprocessable: 1 } });
    } finally {
      await db.pool.query('DROP TRIGGER refuse_reason_hunt ON events');
    }
    expect((await rowsByOffset()).get('10')).toMatchObject({ reason: 'unprocessable', detail: expect.stringMatching(/^refused \(a test fault\); SQLSTATE P0001/), replayed: false });
  });
});
