/**
 * The hot path writes a micro-batch's statements at once on a pipelining connection (pg's
 * pipeline mode, src/pipeline/commit.ts, withPipelinedTransaction): BEGIN, fence lock,
 * store-and-score, quarantine and offsets in one write, COMMIT once they have answered. On
 * the real Postgres, through the pool `hunt ingest` uses: it is still one transaction (a
 * statement refused midway, one the driver could not even send, or a refusal at COMMIT
 * leaves nothing of the batch, and the failure reported is the first, not the aborted ones'
 * after it), and the fence is still taken before anything of the batch is stored.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { createIngestPool } from '../../src/ingest/service';
import { classifySlice } from '../../src/pipeline/classify';
import { commitMicroBatch, type MicroBatch } from '../../src/pipeline/commit';
import { sliceRows } from '../../src/store/hot-path/event-rows';
import { sliceOrigins } from '../../src/store/hot-path/record-origins';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound, joined, recordOf } from '../helpers/event-builders';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();
let pool: pg.Pool;

beforeAll(() => {
  pool = createIngestPool({ databaseUrl: db.url }, 2, () => undefined);
});
afterAll(async () => {
  await pool.end();
});

const base = Date.now() - 3_600_000;
const TOPIC = 'pipelined';
const REJECT_BYTES = 3 * 1024 * 1024;
/** Rejects kept at 1 MiB each (MAX_KEPT_BYTES): twenty make two quarantine INSERTs (16 MiB each at most). */
const REJECTS = 20;

/** `accepted` events over two hunts, and `rejects` records too large to accept (3 MiB each). */
function batchOf(partition: number, accepted: number, rejects: number): { batch: MicroBatch; events: HuntEvent[] } {
  const events = Array.from({ length: accepted }, (_, i) => {
    const fields = { eventId: `${partition}-${i}`, huntId: `hunt-${i % 2}`, playerId: `p${i % 7}`, occurredAt: new Date(base + i * 1000).toISOString() };
    return i % 5 === 0 ? joined({ ...fields, displayName: `P${i}` }) : clueFound({ ...fields, clueId: `c${i % 11}`, points: 10 });
  });
  const records = [
    ...events.map((e, i) => ({ offset: String(i), key: Buffer.from(e.huntId), value: recordOf(e), timestamp: String(Date.now()) })),
    ...Array.from({ length: rejects }, (_, i) => ({ offset: String(accepted + i), key: null, value: Buffer.alloc(REJECT_BYTES, 0x7b), timestamp: String(Date.now()) })),
  ];
  const slice = classifySlice(TOPIC, partition, records, new Date());
  const offsets = [{ topic: TOPIC, partition, nextOffset: BigInt(records.length) }];
  return { batch: { rows: slice.rows, origins: slice.origins, rejected: slice.rejected, offsets }, events };
}

async function stored(partition: number): Promise<{ events: number; quarantined: number; offset: number | null; players: number }> {
  const { rows } = await db.pool.query<{ events: number; quarantined: number; offset: number | null; players: number }>(
    `SELECT (SELECT count(*)::int FROM events WHERE source LIKE $1) AS events,
            (SELECT count(*)::int FROM quarantine WHERE source_topic = $2 AND source_partition = $3) AS quarantined,
            (SELECT next_offset FROM consumer_offsets WHERE group_id = 'g' AND topic = $2 AND partition = $3) AS offset,
            (SELECT count(*)::int FROM player_scores WHERE player_id LIKE 'p%') AS players`,
    [`kafka:${TOPIC}:${partition}:%`, TOPIC, partition],
  );
  return rows[0] as { events: number; quarantined: number; offset: number | null; players: number };
}

describe('a micro-batch written at once to a pipelining connection', () => {
  it('commits events, quarantine rows and the offset together, once', async () => {
    expect(pool.options.pipeline).toBe(true);
    const { batch } = batchOf(0, 200, REJECTS);
    const first = await commitMicroBatch(pool, 'g', batch, { copyRejectsToDlq: true });
    expect(first).toMatchObject({ inserted: 200, duplicates: 0, isolated: false });
    expect(await stored(0)).toEqual({ events: 200, quarantined: REJECTS, offset: 200 + REJECTS, players: 14 });
    // Redelivered: no effect.
    const again = await commitMicroBatch(pool, 'g', batch, { copyRejectsToDlq: true });
    expect(again).toMatchObject({ inserted: 0, duplicates: 200 });
    expect(await stored(0)).toEqual({ events: 200, quarantined: REJECTS, offset: 200 + REJECTS, players: 14 });
  });

  // An error that is not the data's (55000): commitMicroBatch must throw it for a retry, not
  // isolate. Raised by the offsets statement itself, or only at COMMIT (a deferred trigger).
  it.each([
    { when: 'by the offsets statement', trigger: 'CREATE TRIGGER refuse_offsets BEFORE INSERT OR UPDATE ON consumer_offsets', partition: 1 },
    { when: 'at COMMIT', trigger: 'CREATE CONSTRAINT TRIGGER refuse_offsets AFTER INSERT OR UPDATE ON consumer_offsets DEFERRABLE INITIALLY DEFERRED', partition: 2 },
  ])('stores nothing when the transaction is refused $when, and reports that refusal', async ({ trigger, partition }) => {
    await db.pool.query(`CREATE OR REPLACE FUNCTION refuse_offsets() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'offsets refused for the test' USING ERRCODE = 'object_not_in_prerequisite_state'; END $$`);
    await db.pool.query(`${trigger} FOR EACH ROW EXECUTE FUNCTION refuse_offsets()`);
    const { batch } = batchOf(partition, 150, REJECTS);
    const applied = async () => (await db.pool.query<{ n: number }>(`SELECT coalesce(sum(events_applied), 0)::int AS n FROM hunts`)).rows[0]?.n;
    const before = await applied();

    await expect(commitMicroBatch(pool, 'g', batch, { copyRejectsToDlq: true })).rejects.toMatchObject({ code: '55000', message: 'offsets refused for the test' });
    expect(await stored(partition)).toMatchObject({ events: 0, quarantined: 0, offset: null });
    expect(await applied()).toBe(before);

    // The pool is fine afterwards: the same batch commits once the cause is gone.
    await db.pool.query('DROP TRIGGER refuse_offsets ON consumer_offsets');
    const retried = await commitMicroBatch(pool, 'g', batch, { copyRejectsToDlq: true });
    expect(retried).toMatchObject({ inserted: 150, isolated: false });
    expect(await stored(partition)).toMatchObject({ events: 150, quarantined: REJECTS, offset: 150 + REJECTS });
  });

  it('stores nothing when the driver cannot send one of the statements, and reports why', async () => {
    // pg fails a query whose parameter it cannot encode without sending it: Postgres never
    // hears of it, so only the client can keep the COMMIT from committing the rest.
    const { batch } = batchOf(4, 50, 2);
    const unencodable = { toPostgres: () => { throw new Error('cannot encode this key'); } } as unknown as Buffer;
    const rejected = [{ ...batch.rejected[0]!, key: unencodable }, ...batch.rejected.slice(1)];

    await expect(commitMicroBatch(pool, 'g', { ...batch, rejected }, { copyRejectsToDlq: true })).rejects.toThrow('cannot encode this key');
    expect(await stored(4)).toMatchObject({ events: 0, quarantined: 0, offset: null });
    await expect(commitMicroBatch(pool, 'g', batch, { copyRejectsToDlq: true })).resolves.toMatchObject({ inserted: 50 });
    expect(await stored(4)).toMatchObject({ events: 50, quarantined: 2, offset: 52 });
  });

  it('takes the fences before storing anything, as when the statements went one by one', async () => {
    const { batch } = batchOf(3, 40, 0);
    // A repair holding one of the batch's hunts, as reconcile does.
    const repair = await db.pool.connect();
    try {
      await repair.query('BEGIN');
      await repair.query(`SELECT hunt_id FROM hunts WHERE hunt_id = 'hunt-1' FOR UPDATE`);
      const committing = commitMicroBatch(pool, 'g', batch);
      // The pipelined session waits on the fence lock, the statement before the store.
      const waiting = await waitFor(
        'the micro-batch to wait on the fence',
        async () => {
          const { rows } = await db.pool.query<{ query: string }>(
            `SELECT query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
          );
          return rows[0]?.query;
        },
        { timeoutMs: 10_000 },
      );
      expect(waiting).toMatch(/^INSERT INTO hunts \(hunt_id\)/);
      expect(await stored(3)).toMatchObject({ events: 0, offset: null });
      await repair.query('COMMIT');
      await expect(committing).resolves.toMatchObject({ inserted: 40 });
    } finally {
      repair.release();
    }
    expect(await stored(3)).toMatchObject({ events: 40, offset: 40 });
  });

  it('commits a batch again the ordinary way when its plain insert meets a stored eventId, scoring nothing twice', async () => {
    const { batch } = batchOf(5, 60, 2);
    const firstHalf = { ...batch, rows: sliceRows(batch.rows, 0, 30), origins: sliceOrigins(batch.origins, 0, 30), rejected: [], offsets: [] };
    await expect(commitMicroBatch(pool, 'g', firstHalf, { plainInsert: { leaveOut: [] } })).resolves.toMatchObject({ inserted: 30, plainInsertConflicted: false });
    const appliedAfterHalf = await eventsApplied();

    // The memory of stored eventIds forgot the first half: the plain insert fails on it, and the batch goes again with the check.
    const whole = await commitMicroBatch(pool, 'g', batch, { copyRejectsToDlq: true, plainInsert: { leaveOut: [] } });
    expect(whole).toMatchObject({ inserted: 30, duplicates: 30, isolated: false, plainInsertConflicted: true });
    expect(await stored(5)).toMatchObject({ events: 60, quarantined: 2, offset: 62 });
    const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE source LIKE 'kafka:${TOPIC}:5:%' AND split_part(source, ':', 4)::int < 30`);
    expect(rows[0]?.n).toBe(30);
    // The hunts counted the second half once, and the first half not again (the projections' sameness: apply-events.property.test.ts).
    expect(await eventsApplied()).toBe(appliedAfterHalf + 30);
    await expect(commitMicroBatch(pool, 'g', batch, { plainInsert: { leaveOut: [] } })).resolves.toMatchObject({ inserted: 0, duplicates: 60, plainInsertConflicted: true });
    expect(await stored(5)).toMatchObject({ events: 60, quarantined: 2, offset: 62 });
  });

  it('leaves out the rows it is told repeat an eventId, and counts them as duplicates', async () => {
    const { batch } = batchOf(6, 20, 0);
    const result = await commitMicroBatch(pool, 'g', batch, { plainInsert: { leaveOut: [4, 9] } });
    expect(result).toMatchObject({ inserted: 18, duplicates: 2, plainInsertConflicted: false });
    const { rows } = await db.pool.query<{ id: string }>(`SELECT event_id AS id FROM events WHERE source LIKE 'kafka:${TOPIC}:6:%'`);
    expect(rows.map((r) => r.id)).not.toContain('6-4');
    expect(rows.map((r) => r.id)).not.toContain('6-9');
    expect(rows).toHaveLength(18);
  });

  it('still isolates a record the database refuses when the batch went with a plain insert', async () => {
    await db.pool.query(`CREATE OR REPLACE FUNCTION refuse_one_event() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.event_id = '7-3' THEN RAISE EXCEPTION 'event refused for the test' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$`);
    await db.pool.query(`CREATE TRIGGER refuse_one_event BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_one_event()`);
    try {
      const { batch } = batchOf(7, 40, 0);
      const result = await commitMicroBatch(pool, 'g', batch, { plainInsert: { leaveOut: [] } });
      expect(result).toMatchObject({ inserted: 39, isolated: true, plainInsertConflicted: false });
      expect(result.unprocessable.map((r) => r.offset)).toEqual(['3']);
      expect(await stored(7)).toMatchObject({ events: 39, quarantined: 1, offset: 40 });
    } finally {
      await db.pool.query('DROP TRIGGER refuse_one_event ON events');
    }
  });
});

async function eventsApplied(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`SELECT coalesce(sum(events_applied), 0)::int AS n FROM hunts`);
  return rows[0]?.n ?? 0;
}
