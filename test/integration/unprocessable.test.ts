/**
 * A record that passes validation but that the database refuses (here: a CHECK constraint,
 * a trigger that raises, a deferred constraint trigger that refuses only at COMMIT, and a
 * CHECK on `hunts` that refuses the hunt's fence row, added in this test's database) is rejected as `unprocessable` with the database's reason,
 * in the DLQ and in quarantine, and the rest of its micro-batch is applied exactly once. The
 * batch plane's paths through the same store (backfill, dlqReplay) isolate it the same way.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound, joined, recordOf } from '../helpers/event-builders';
import { createTestTopics, projectionOf, readTopic, sendRecords, startIngestProcess, waitCaughtUp, type IngestProcess, type TestTopics } from '../helpers/ingest';
import { uniqueName } from '../helpers/wait';
import { TEST_DATA_DIR, writeNdjson } from '../helpers/worker';
import { useInProcessWorker } from '../helpers/worker-fixture';

const base = Date.now() - 3_600_000;
const at = (i: number) => new Date(base + i * 1000).toISOString();
// 600 events over 3 hunts; two by the player a CHECK constraint refuses, two by the one a
// trigger refuses and two by the one a deferred constraint trigger refuses, in the middle of
// the stream; and two of a hunt whose fence row a CHECK on `hunts` refuses.
const refusedPlayers: Record<number, string> = { 250: 'mallory', 251: 'mallory', 400: 'trudy', 401: 'trudy', 500: 'eve', 501: 'eve' };
const refusedHunts: Record<number, string> = { 300: 'retired-1', 301: 'retired-1' };
const events: HuntEvent[] = Array.from({ length: 600 }, (_, i) => {
  const huntId = refusedHunts[i] ?? `hunt-${i % 3}`;
  const playerId = refusedPlayers[i] ?? `p${i % 40}`;
  return i % 7 === 0
    ? joined({ eventId: `u-${i}`, huntId, playerId, displayName: `P${i}`, occurredAt: at(i) })
    : clueFound({ eventId: `u-${i}`, huntId, playerId, clueId: `c${i % 11}`, points: i % 30, occurredAt: at(i) });
});
const isRefused = (e: HuntEvent) => ['mallory', 'trudy', 'eve'].includes(e.playerId) || e.huntId.startsWith('retired-');
const refused = events.filter(isRefused);
const applied = events.filter((e) => !isRefused(e));

const db = useTestDatabase();
let topics: TestTopics;
let ingest: IngestProcess;

beforeAll(async () => {
  await db.pool.query(`ALTER TABLE events ADD CONSTRAINT no_mallory CHECK (player_id <> 'mallory')`);
  // Refuses the fence row isolation locks before any group: the hunt's rows must be refused, not the batch.
  await db.pool.query(`ALTER TABLE hunts ADD CONSTRAINT no_retired CHECK (hunt_id NOT LIKE 'retired-%')`);
  // A trigger's RAISE EXCEPTION (SQLSTATE P0001) refuses a row as surely as a constraint.
  await db.pool.query(`CREATE FUNCTION refuse_trudy() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.player_id = 'trudy' THEN RAISE EXCEPTION 'trudy is banned'; END IF; RETURN NEW; END $$`);
  await db.pool.query(`CREATE TRIGGER refuse_trudy BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_trudy()`);
  // A deferred one refuses only at COMMIT, after every savepoint: isolation must make it immediate.
  await db.pool.query(`CREATE FUNCTION refuse_eve() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.player_id = 'eve' THEN RAISE EXCEPTION 'eve is banned' USING ERRCODE = 'check_violation'; END IF; RETURN NULL; END $$`);
  await db.pool.query(`CREATE CONSTRAINT TRIGGER refuse_eve AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_eve()`);
  topics = await createTestTopics(2);
  // Fixed, large micro-batches: the refused records share a batch with hundreds of others.
  ingest = startIngestProcess(db.url, topics, { INGEST_BATCH_MODE: 'fixed', INGEST_LINGER_MS: '500' });
  await ingest.ready();
  await sendRecords(topics.events, events.map((e) => ({ key: e.huntId, value: recordOf(e) })));
  await waitCaughtUp(db.pool, topics);
});

afterAll(async () => {
  await ingest?.kill('SIGTERM');
});

describe('a record the database refuses', () => {
  it('is rejected as unprocessable, and the rest of its batch is applied exactly once', async () => {
    expect(await projectionOf(db.pool)).toEqual(foldEvents(applied));
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
    expect(rows[0]?.n).toBe(applied.length);
    const metrics = await (await fetch(`${ingest.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/hunt_ingest_rejects_total\{reason="unprocessable"\} 8\b/);
    expect(metrics).toMatch(/hunt_ingest_isolations_total [1-9]/);
    expect(metrics).toMatch(new RegExp(`hunt_ingest_events_accepted_total ${applied.length}\\b`));
  });

  it("goes to the DLQ unchanged with the database's reason, and to quarantine once", async () => {
    // The records are for different hunts, so in different partitions: no order between them.
    const dlq = (await readTopic(topics.dlq, refused.length)).sort((a, b) => String(a.value).localeCompare(String(b.value)));
    expect(dlq.map((r) => r.headers['error.reason'])).toEqual(refused.map(() => 'unprocessable'));
    expect(dlq.map((r) => r.value?.toString())).toEqual(refused.map((e) => JSON.stringify(e)));
    expect(dlq[0]?.headers['error.detail']).toMatch(/no_mallory/);
    expect(dlq[2]?.headers['error.detail']).toMatch(/no_retired/);
    expect(dlq[4]?.headers['error.detail']).toMatch(/trudy is banned/);
    expect(dlq[6]?.headers['error.detail']).toMatch(/eve is banned/);
    const quarantined = await db.pool.query(`SELECT reason, detail, record_value FROM quarantine ORDER BY record_value`);
    expect(quarantined.rows.map((r) => [r.reason, r.record_value.toString()])).toEqual(refused.map((e) => ['unprocessable', JSON.stringify(e)]));
    expect(quarantined.rows[0].detail).toMatch(/check constraint "no_mallory".*SQLSTATE 23514/);
    expect(quarantined.rows[2].detail).toMatch(/relation "hunts" violates check constraint "no_retired".*SQLSTATE 23514/);
    expect(quarantined.rows[4].detail).toMatch(/trudy is banned.*SQLSTATE P0001/);
    expect(quarantined.rows[6].detail).toMatch(/eve is banned.*SQLSTATE 23514/);
  });

  it('keeps the readiness green: nothing is stuck', async () => {
    expect((await fetch(`${ingest.apiUrl}/readyz`)).status).toBe(200);
  });
});

describe('the batch plane, on the same database', () => {
  const batch = useInProcessWorker(db, 'unprocessable');

  it('backfill quarantines a refused line as unprocessable and imports the rest of its chunk', async () => {
    const later = [
      clueFound({ eventId: 'b-1', huntId: 'hunt-9', playerId: 'ann', clueId: 'x', points: 5, occurredAt: at(1000) }),
      clueFound({ eventId: 'b-2', huntId: 'hunt-9', playerId: 'mallory', clueId: 'x', points: 5, occurredAt: at(1001) }),
      clueFound({ eventId: 'b-3', huntId: 'hunt-9', playerId: 'bob', clueId: 'x', points: 5, occurredAt: at(1002) }),
    ];
    const file = path.join(TEST_DATA_DIR, uniqueName('unprocessable'), 'events.ndjson');
    writeNdjson(file, later.map((e) => recordOf(e)));
    const result = await batch.client.workflow.execute('backfill', { taskQueue: batch.taskQueue, workflowId: uniqueName('backfill'), args: [{ source: { kind: 'file', path: file } }] });
    expect(result).toMatchObject({ state: 'completed', counts: { records: 3, inserted: 2, rejected: 1, rejectedByReason: { unprocessable: 1 } } });
    const { rows } = await db.pool.query(`SELECT source_offset, reason FROM quarantine WHERE source_topic = $1`, [`file:${fs.realpathSync(file)}`]);
    expect(rows).toEqual([{ source_offset: 2, reason: 'unprocessable' }]);
  });

  it('dlqReplay leaves a record the database still refuses quarantined, and finishes', async () => {
    const result = await batch.client.workflow.execute('dlqReplay', { taskQueue: batch.taskQueue, workflowId: uniqueName('replay'), args: [{ reasons: ['unprocessable'] }] });
    expect(result).toMatchObject({ replayed: 0, stillInvalid: { unprocessable: 9 } });
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM quarantine WHERE replayed_at IS NULL AND reason = 'unprocessable'`);
    expect(rows[0].n).toBe(9);
  });
});
