/**
 * The Kafka backfill step commits through the import pipeline: while a slice commits, the next
 * ones are read and committed in their lanes. Its heartbeated cursor must still never pass a
 * slice that is not wholly in, or the activity's retry, resuming from it, would skip records
 * never stored; nor may a slice with nothing in the job's time window, passed without a
 * transaction. The failure is a trigger's deadlock error (40P01): an outage, retried.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { resolveRange } from '../../src/batch/backfill/kafka-source';
import type { ChunkBatchInput, ChunkBatchResult } from '../../src/batch/backfill/types';
import { createBackfillActivities } from '../../src/batch/backfill-job';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';
import { laneOfHunt } from '../../src/store/hot-path/event-rows';
import { createTestDatabase } from '../helpers/database';
import { clueFound, recordOf, T0_MS } from '../helpers/event-builders';
import { createTestTopics, sendRecords, testKafka } from '../helpers/ingest';
import { uniqueName } from '../helpers/wait';

const LANES = 2;
const huntInLane = (lane: number) => Array.from({ length: 50 }, (_, i) => `hunt-${i}`).find((h) => laneOfHunt(h, LANES) === lane)!;
const steadyHunt = huntInLane(0);
const failingHunt = huntInLane(1);

/** The backfill's activities on `pool`, reading `topic`, with every insert of the failing hunt's events pausing 0.5 s, then failing (40P01). */
async function withFailingHunt(pool: pg.Pool, topic: string) {
  await pool.query(`CREATE FUNCTION kafka_import_fault() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.hunt_id = '${failingHunt}' THEN
        PERFORM pg_sleep(0.5);
        RAISE EXCEPTION 'deadlock detected (a test fault)' USING ERRCODE = '40P01';
      END IF;
      RETURN NEW;
    END $$`);
  await pool.query('CREATE TRIGGER kafka_import_fault BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION kafka_import_fault()');
  const config = loadConfig({ BACKFILL_TOPICS: topic, INGEST_COMMIT_LANES: String(LANES) });
  return createBackfillActivities({ pool, kafka: testKafka(), config, logger: createLogger({ logLevel: 'silent' }) });
}

describe('the Kafka backfill step, when a slice fails to commit while later ones commit in another lane', () => {
  it('heartbeats no cursor past the failed slice, and its retry stores every record, in order, counted once', async () => {
    const topics = await createTestTopics(1);
    // Three slices of 20: the steady hunt, the failing hunt, the steady hunt again.
    const huntOf = (i: number) => (i >= 20 && i < 40 ? failingHunt : steadyHunt);
    const events = Array.from({ length: 60 }, (_, i) =>
      clueFound({ eventId: `kp-${i}`, huntId: huntOf(i), playerId: `p${i}`, occurredAt: new Date(T0_MS + i * 1000).toISOString(), clueId: `c${i}`, points: 10 }),
    );
    await sendRecords(topics.events, events.map((e) => ({ key: e.huntId, value: recordOf(e) })));
    const range = await resolveRange(testKafka(), topics.events, undefined);

    const db = await createTestDatabase();
    try {
      // The failing hunt's slice pauses, then fails: the third slice, in the other lane, commits meanwhile.
      const activities = await withFailingHunt(db.pool, topics.events);
      const input: ChunkBatchInput = { jobId: uniqueName('kafka-pipeline'), source: { kind: 'kafka', topic: topics.events }, cursor: { kafka: range.start }, chunkSize: 20, maxChunks: 10, dryRun: false, range };

      const first = new MockActivityEnvironment();
      const beats: ChunkBatchResult[] = [];
      first.on('heartbeat', (details: ChunkBatchResult) => beats.push(details));
      await expect(first.run(activities.importChunks, input)).rejects.toMatchObject({ code: '40P01' });
      const stored = async () => (await db.pool.query<{ event_id: string }>(`SELECT event_id FROM events ORDER BY seq`)).rows.map((r) => r.event_id);
      // The third slice is in (it did not wait for the second), but no heartbeat passed the second.
      expect(await stored()).toEqual([...events.slice(0, 20), ...events.slice(40)].map((e) => e.eventId));
      const last = beats.at(-1);
      expect(last).toMatchObject({ cursor: { kafka: { '0': '20' } }, counts: { inserted: 20 } });
      expect(beats.every((b) => Number(b.cursor.kafka?.['0']) <= 20)).toBe(true);

      // The retry resumes from the last heartbeat once the fault is gone.
      await db.pool.query('DROP TRIGGER kafka_import_fault ON events');
      const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: last });
      const result = await retry.run(activities.importChunks, input);
      expect(result).toMatchObject({ done: true, cursor: { kafka: { '0': '60' } }, counts: { records: 60, inserted: 60, duplicates: 0 } });
      const storedNow = await stored();
      expect([...storedNow].sort()).toEqual(events.map((e) => e.eventId).sort());
      // Each hunt's events went in in the topic's order.
      const order = (huntId: string) => storedNow.filter((id) => events.find((e) => e.eventId === id)?.huntId === huntId);
      expect(order(failingHunt)).toEqual(events.slice(20, 40).map((e) => e.eventId));
      expect(order(steadyHunt)).toEqual([...events.slice(0, 20), ...events.slice(40)].map((e) => e.eventId));
    } finally {
      await db.dispose();
    }
  }, 60_000);

  it('passes a slice with nothing in the time window only in its turn, after the failed slice before it', async () => {
    const topics = await createTestTopics(1);
    // Slices of 20: the steady hunt, the failing hunt, then 20 records stamped after the window.
    const events = Array.from({ length: 60 }, (_, i) =>
      clueFound({ eventId: `kw-${i}`, huntId: i >= 20 && i < 40 ? failingHunt : steadyHunt, playerId: `p${i}`, occurredAt: new Date(T0_MS + i * 1000).toISOString(), clueId: `c${i}`, points: 10 }),
    );
    const stampedAt = (i: number) => String(i < 40 ? T0_MS + i * 1000 : T0_MS + 3_600_000);
    await sendRecords(topics.events, events.map((e, i) => ({ key: e.huntId, value: recordOf(e), timestamp: stampedAt(i) })));
    const range = await resolveRange(testKafka(), topics.events, undefined);

    const db = await createTestDatabase();
    try {
      const activities = await withFailingHunt(db.pool, topics.events);
      const to = new Date(T0_MS + 600_000).toISOString();
      const input: ChunkBatchInput = { jobId: uniqueName('kafka-window'), source: { kind: 'kafka', topic: topics.events, to }, cursor: { kafka: range.start }, chunkSize: 20, maxChunks: 10, dryRun: false, range };

      const first = new MockActivityEnvironment();
      const beats: ChunkBatchResult[] = [];
      first.on('heartbeat', (details: ChunkBatchResult) => beats.push(details));
      await expect(first.run(activities.importChunks, input)).rejects.toMatchObject({ code: '40P01' });
      // The third slice was passed while the second still committed: its pass must not move the cursor past the second.
      expect(beats.map((b) => b.cursor.kafka?.['0'])).not.toContain('60');
      expect(beats.at(-1)).toMatchObject({ cursor: { kafka: { '0': '20' } }, counts: { inserted: 20, outsideRange: 0 } });

      await db.pool.query('DROP TRIGGER kafka_import_fault ON events');
      const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: beats.at(-1) });
      const result = await retry.run(activities.importChunks, input);
      expect(result).toMatchObject({ done: true, cursor: { kafka: { '0': '60' } }, counts: { records: 40, inserted: 40, outsideRange: 20 } });
      expect(Number((await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]?.n)).toBe(40);
    } finally {
      await db.dispose();
    }
  }, 60_000);
});
