/**
 * dlqReplay on the real services: quarantined records that become valid (a future
 * timestamp whose time has come) are ingested exactly once; still-invalid ones stay.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { FUTURE_TOLERANCE_MS, MAX_EVENT_BYTES } from '../../src/events/validate';
import { createDlqReplayActivities, REFUSING_BATCH_SIZE, type ReplayTotals } from '../../src/correctness/dlq-replay-job';
import { replayBatch } from '../../src/store/correctness/dlq-replay';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { createTestTopics, projectionOf, sendRecords, startIngestProcess, waitCaughtUp } from '../helpers/ingest';
import { uniqueName, waitFor } from '../helpers/wait';
import { useInProcessWorker } from '../helpers/worker-fixture';
import { slowNextEventInsert } from '../helpers/slow-statement';
import { applyInOneTransaction } from '../helpers/stored-events';

const db = useTestDatabase();
const batch = useInProcessWorker(db, 'dlq');

/** Quarantines `values` under `reason`, as records 1, 2, ... of partition 0 of `topic`; returns their ids in order. */
async function quarantineAll(topic: string, reason: string, values: Buffer[]): Promise<number[]> {
  const { rows } = await db.pool.query<{ id: string }>(
    `INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail)
     SELECT $1, 0, o, v, $2, 'test' FROM unnest($3::bytea[]) WITH ORDINALITY AS t(v, o) RETURNING id`,
    [topic, reason, values],
  );
  return rows.map((r) => Number(r.id)).sort((a, b) => a - b);
}

const replay = (input: object) => batch.client.workflow.execute('dlqReplay', { taskQueue: batch.taskQueue, workflowId: uniqueName('dlq-replay'), args: [input] });

describe('dlqReplay', () => {
  it('ingests records that became valid exactly once, and leaves the rest quarantined', async () => {
    const topics = await createTestTopics(1);
    const ingest = startIngestProcess(db.url, topics);
    await ingest.ready();
    const soon = new Date(Date.now() + FUTURE_TOLERANCE_MS + 15_000).toISOString();
    const early = clueFound({ eventId: 'from-the-future', huntId: 'h1', playerId: 'p1', points: 30, occurredAt: soon });
    try {
      await sendRecords(topics.events, [
        { key: 'h1', value: JSON.stringify(clueFound({ eventId: 'ok', huntId: 'h1', playerId: 'p2', points: 5, occurredAt: new Date().toISOString() })) },
        { key: 'h1', value: JSON.stringify(early) },
        { key: 'h1', value: JSON.stringify({ ...early, eventId: 'broken', payload: { clueId: 'c1', points: -1 } }) },
      ]);
      await waitCaughtUp(db.pool, topics);
    } finally {
      await ingest.kill('SIGTERM');
    }
    const reasons = await db.pool.query('SELECT reason FROM quarantine ORDER BY id');
    expect(reasons.rows.map((r) => r.reason)).toEqual(['future_timestamp', 'schema_violation']);

    // Too early: nothing is valid yet.
    expect(await replay({})).toMatchObject({ examined: 2, replayed: 0, stillInvalid: { future_timestamp: 1, schema_violation: 1 } });
    expect(await replay({ reasons: ['future_timestamp'], dryRun: true })).toMatchObject({ replayed: 0, dryRun: true });

    await waitFor('the future timestamp to come within tolerance', () => Date.parse(soon) - FUTURE_TOLERANCE_MS < Date.now(), {
      timeoutMs: 30_000,
    });
    expect(await replay({ reasons: ['future_timestamp'], dryRun: true })).toMatchObject({ examined: 1, replayed: 1, dryRun: true });
    expect((await db.pool.query('SELECT count(*)::int AS n FROM events')).rows[0].n).toBe(1); // the dry run wrote nothing
    expect(await replay({ reasons: ['future_timestamp'] })).toMatchObject({ examined: 1, replayed: 1, duplicates: 0 });
    expect(await replay({})).toMatchObject({ examined: 1, replayed: 0, stillInvalid: { schema_violation: 1 } });
    expect(await replay({ reasons: ['future_timestamp'] })).toMatchObject({ examined: 0, replayed: 0 });

    const players = (await projectionOf(db.pool)).players.map((p) => [p.playerId, p.score]);
    expect(players).toEqual([
      ['p1', 30],
      ['p2', 5],
    ]);
    const marked = await db.pool.query('SELECT reason, replayed_event_id FROM quarantine WHERE replayed_at IS NOT NULL');
    expect(marked.rows).toEqual([{ reason: 'future_timestamp', replayed_event_id: 'from-the-future' }]);
  });

  it('leaves records over the size limit quarantined without fetching them, a cut-down copy that parses included', async () => {
    const event = clueFound({ eventId: 'was-too-large', huntId: 'h9', playerId: 'p9', points: 7, occurredAt: new Date().toISOString() });
    // What a backfill keeps of a 200 KB line: its first 64 KiB, here a valid event and spaces.
    const cutDown = Buffer.from(JSON.stringify(event).padEnd(MAX_EVENT_BYTES, ' '));
    // A 1 MB record from Kafka, kept whole, whatever its reason.
    const huge = Buffer.from(JSON.stringify({ ...event, eventId: 'huge', padding: 'x'.repeat(1_000_000) }));
    await db.pool.query(
      `INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail)
       VALUES ('file:archive.ndjson', 0, 1, $1, 'too_large', 'line is 204800 bytes'), ('t', 0, 7, $2, 'invalid_json', 'cut')`,
      [cutDown, huge],
    );
    expect(await replay({ reasons: ['too_large', 'invalid_json'] })).toMatchObject({ examined: 2, replayed: 0, stillInvalid: { too_large: 2 } });
    expect((await db.pool.query("SELECT count(*)::int AS n FROM events WHERE event_id IN ('was-too-large', 'huge')")).rows[0].n).toBe(0);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM quarantine WHERE replayed_at IS NULL AND source_offset IN (1, 7)')).rows[0].n).toBe(2);
  });

  it('fetches a batch within its byte budget, whatever its row count, and goes on after it', async () => {
    // Five quarantined events of about 2 KB each, replayed against a 5,000-byte budget.
    const values = Array.from({ length: 5 }, (_, i) =>
      Buffer.from(JSON.stringify(clueFound({ eventId: `budget-${i}`, huntId: 'hb', playerId: 'p1', clueId: `c${i}`, points: 1, occurredAt: new Date().toISOString() })).padEnd(2000, ' ')),
    );
    const ids = await quarantineAll('budget', 'future_timestamp', values);
    const filter = { reasons: ['future_timestamp'] };
    const sizes: number[] = [];
    let after = ids[0]! - 1;
    for (;;) {
      const result = await replayBatch(db.pool, filter, after, 1000, false, { maxBytes: 5000 });
      if (!result) break;
      sizes.push(result.examined);
      after = result.lastId;
    }
    expect(sizes).toEqual([2, 2, 1]);
    expect((await db.pool.query("SELECT count(*)::int AS n FROM events WHERE event_id LIKE 'budget-%'")).rows[0].n).toBe(5);
    // A record larger than the budget alone still goes, alone.
    await db.pool.query(`UPDATE quarantine SET replayed_at = NULL WHERE source_topic = 'budget'`);
    expect(await replayBatch(db.pool, filter, ids[0]! - 1, 1000, true, { maxBytes: 100 })).toMatchObject({ examined: 1, lastId: ids[0] });
  });

  it('waits for rows another transaction holds instead of passing them by, and skips those it replayed', async () => {
    const values = Array.from({ length: 6 }, (_, i) =>
      Buffer.from(JSON.stringify(clueFound({ eventId: `held-${i}`, huntId: 'hl', playerId: 'p1', clueId: `c${i}`, points: 1, occurredAt: new Date().toISOString() }))),
    );
    const ids = await quarantineAll('held', 'future_timestamp', values);
    // Another holder of the first three rows (an earlier attempt not yet ended), which replays the first.
    const holder = await db.pool.connect();
    const batches: number[] = [];
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT id FROM quarantine WHERE id = ANY($1::bigint[]) FOR UPDATE', [ids.slice(0, 3)]);
      await holder.query('UPDATE quarantine SET replayed_at = now() WHERE id = $1', [ids[0]]);
      const run = (async () => {
        let after = ids[0]! - 1;
        for (;;) {
          const result = await replayBatch(db.pool, { reasons: ['future_timestamp'] }, after, 1000, false);
          if (!result) return;
          batches.push(result.examined);
          after = result.lastId;
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(batches).toEqual([]); // waiting on the holder
      await holder.query('COMMIT');
      await run;
    } finally {
      holder.release();
    }
    expect(batches).toEqual([5]);
    const stored = await db.pool.query<{ event_id: string }>("SELECT event_id FROM events WHERE event_id LIKE 'held-%' ORDER BY event_id");
    expect(stored.rows.map((r) => r.event_id)).toEqual(['held-1', 'held-2', 'held-3', 'held-4', 'held-5']);
    expect((await db.pool.query("SELECT count(*)::int AS n FROM quarantine WHERE source_topic = 'held' AND replayed_at IS NULL")).rows[0].n).toBe(0);
  });

  it('keeps its attempt alive through a batch that replays for longer than the heartbeat timeout', { timeout: 120_000 }, async () => {
    const values = Array.from({ length: 20 }, (_, i) =>
      Buffer.from(JSON.stringify(clueFound({ eventId: `slow-${i}`, huntId: 'sl', playerId: 'p1', clueId: `c${i}`, points: 1, occurredAt: new Date().toISOString() }))),
    );
    await quarantineAll('slow', 'future_timestamp', values);
    // Once, a statement storing events takes 35 s: past the step's 30 s heartbeat timeout.
    const slow = await slowNextEventInsert(db.pool, 35);
    try {
      const handle = await batch.client.workflow.start('dlqReplay', { taskQueue: batch.taskQueue, workflowId: uniqueName('dlq-replay-slow'), args: [{ reasons: ['future_timestamp'] }] });
      await handle.result();
      expect(await slow.fired()).toBe(true);
      // Earlier tests of the file leave records of the same reason: count this test's own.
      const own = await db.pool.query("SELECT count(*)::int AS n FROM quarantine WHERE source_topic = 'slow' AND replayed_at IS NOT NULL");
      expect(own.rows[0].n).toBe(values.length);
      expect((await db.pool.query("SELECT count(*)::int AS n FROM events WHERE event_id LIKE 'slow-%'")).rows[0].n).toBe(values.length);
      // Before, the attempt was timed out mid-batch; the retry rolled its batch back and replayed it again.
      const history = (await handle.fetchHistory()).events ?? [];
      const attempts = history.flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt] : []));
      expect(attempts).toEqual([1]);
    } finally {
      await slow.remove();
    }
  });

  it('replays in small batches while the database refuses records, so their hunts are locked a short while at a time', async () => {
    const values = Array.from({ length: 400 }, (_, i) =>
      Buffer.from(JSON.stringify(clueFound({ eventId: `refused-${i}`, huntId: 'refused-hunt', playerId: 'p1', clueId: `c${i}`, points: 1, occurredAt: new Date().toISOString() }))),
    );
    await quarantineAll('refused', 'unprocessable', values);
    // The fix that would let them in is not in yet: the database still refuses every one.
    await db.pool.query(`CREATE FUNCTION refuse_hunt() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.hunt_id = 'refused-hunt' THEN RAISE EXCEPTION 'refused (a test fault)'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER refuse_hunt BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_hunt()');
    try {
      const attempt = new MockActivityEnvironment({ workflowExecution: { workflowId: uniqueName('dlq-refusing'), runId: 'run-1' } });
      const examined: number[] = [];
      attempt.on('heartbeat', (totals: ReplayTotals) => {
        if (totals.examined !== examined.at(-1)) examined.push(totals.examined);
      });
      const totals = await attempt.run(createDlqReplayActivities({ pool: db.pool }).replayQuarantined, { reasons: ['unprocessable'], batchSize: 200, dryRun: false });
      expect(totals).toMatchObject({ examined: 400, replayed: 0, stillInvalid: { unprocessable: 400 } });
      // The first batch at the run's size; after its refusals, batches of REFUSING_BATCH_SIZE.
      const sizes = examined.map((n, i) => n - (examined[i - 1] ?? 0)).filter((n) => n > 0);
      expect(sizes).toEqual([200, ...Array.from({ length: 200 / REFUSING_BATCH_SIZE }, () => REFUSING_BATCH_SIZE)]);
    } finally {
      await db.pool.query('DROP TRIGGER refuse_hunt ON events');
    }
  });

  it('counts in a dry run what the real run will of a batch: an eventId stored since, or repeated in it, as a duplicate', async () => {
    const afterId = (await db.pool.query<{ id: number }>('SELECT coalesce(max(id), 0)::int AS id FROM quarantine')).rows[0]!.id;
    const stored = clueFound({ eventId: 'dry-stored', huntId: 'dry-hunt', occurredAt: new Date().toISOString() });
    const twice = clueFound({ eventId: 'dry-twice', huntId: 'dry-hunt', clueId: 'c2', occurredAt: new Date().toISOString() });
    const fresh = clueFound({ eventId: 'dry-fresh', huntId: 'dry-hunt', clueId: 'c3', occurredAt: new Date().toISOString() });
    await db.pool.query(
      `INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail)
       SELECT 'dry-run', 0, o, v, 'unprocessable', 'test' FROM unnest($1::bytea[]) WITH ORDINALITY AS u(v, o)`,
      [[stored, twice, twice, fresh].map((e) => Buffer.from(JSON.stringify(e)))],
    );
    // A producer's retry stored one since it was quarantined.
    await applyInOneTransaction(db.pool, [stored]);
    const dry = await replayBatch(db.pool, { reasons: ['unprocessable'] }, afterId, 100, true);
    const real = await replayBatch(db.pool, { reasons: ['unprocessable'] }, afterId, 100, false);
    expect(real).toMatchObject({ examined: 4, replayed: 2, duplicates: 2 });
    // Before, the dry run said 4 replayed, 0 duplicates.
    expect(dry).toEqual(real);
  });

  it('fails fast on a bad input', async () => {
    await expect(replay({ reasons: ['nope'] })).rejects.toThrow();
    const failure = await replay({ from: 'yesterday' }).catch((err) => err);
    expect(String(failure.cause)).toMatch(/from must be an ISO-8601 time/);
  });
});
