/**
 * rollupFlush under steady traffic, on the real Temporal server and Postgres. A run used to
 * chase the newest event: with events always arriving there always was a newer one, so the
 * run never ended and the Schedule skipped every later run. A run now flushes up to the
 * newest event stored when it began (kept for its retries), or until its time budget is
 * spent, and leaves the rest to the next run; nothing is rolled up twice or skipped.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createRollupActivities, type FlushRollupsResult } from '../../src/batch/rollup-job';
import { parseOccurredAt, type HuntEvent } from '../../src/events/schema';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound, hintUsed } from '../helpers/event-builders';
import { useInProcessWorker } from '../helpers/worker-fixture';
import { uniqueName, waitFor } from '../helpers/wait';

const BASE_MS = Date.parse('2026-11-01T08:00:00Z');

/** The n-th event of a stream: four hunts, several players, windows of a few minutes. */
function nthEvent(prefix: string, n: number): HuntEvent {
  const fields = { eventId: `${prefix}-${n}`, huntId: `h-${n % 4}`, playerId: `p-${n % 7}`, clueId: `c-${n}`, occurredAt: new Date(BASE_MS + n * 250).toISOString() };
  return n % 5 === 0 ? hintUsed({ ...fields, penalty: 2 }) : clueFound({ ...fields, points: 1 + (n % 9) });
}

const store = (pool: pg.Pool, events: HuntEvent[]) =>
  withTransaction(pool, (c) => applyEvents(c, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }))));

/** Ingest-like traffic: transactions of a few new events, one after another, until stopped. */
function startTraffic(pool: pg.Pool) {
  let stopped = false;
  let inserted = 0;
  const running = (async () => {
    while (!stopped) {
      const batch = Array.from({ length: 5 }, (_, i) => nthEvent('live', inserted + i));
      await store(pool, batch);
      inserted += batch.length;
    }
  })();
  return {
    inserted: () => inserted,
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

const maxSeq = async (pool: pg.Pool) => (await pool.query<{ seq: number }>('SELECT coalesce(max(seq), 0) AS seq FROM events')).rows[0]!.seq;
const watermark = async (pool: pg.Pool) => (await pool.query<{ last_seq: number }>(`SELECT last_seq FROM job_watermarks WHERE job = 'rollupFlush'`)).rows[0]?.last_seq;
const eventsUpTo = async (pool: pg.Pool, seq: number) => (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE seq <= $1', [seq])).rows[0]!.n;

/** Windows whose rollup row differs from a recount of every raw event, written apart from the job's SQL. */
async function windowsOffFromRecount(pool: pg.Pool, unit: 'minute' | 'hour') {
  const { rows } = await pool.query<{ missing: number; extra: number; differ: number; windows: number }>(
    `WITH recount AS (
       SELECT hunt_id, date_trunc('${unit}', occurred_at, 'UTC') AS w, count(*)::int AS events, count(DISTINCT player_id)::int AS players,
              sum(CASE WHEN type = 'clue.found' THEN (payload->>'points')::int ELSE 0 END)::bigint AS clue_points,
              sum(CASE WHEN type = 'hint.used' THEN (payload->>'penalty')::int ELSE 0 END)::bigint AS hint_penalties
         FROM events GROUP BY 1, 2)
     SELECT count(*) FILTER (WHERE r.hunt_id IS NULL)::int AS missing, count(*) FILTER (WHERE c.hunt_id IS NULL)::int AS extra,
            count(*) FILTER (WHERE (c.events, c.players, c.clue_points, c.hint_penalties) IS DISTINCT FROM (r.events, r.players, r.clue_points, r.hint_penalties))::int AS differ,
            count(*)::int AS windows
       FROM recount c FULL JOIN rollup_${unit} r ON r.hunt_id = c.hunt_id AND r.window_start = c.w`,
  );
  return rows[0]!;
}

async function expectRollupsExact(pool: pg.Pool) {
  for (const unit of ['minute', 'hour'] as const) {
    const off = await windowsOffFromRecount(pool, unit);
    expect(off, unit).toMatchObject({ missing: 0, extra: 0, differ: 0 });
    expect(off.windows, unit).toBeGreaterThan(0);
  }
}

describe('rollupFlush under steady traffic', () => {
  const db = useTestDatabase();
  const batch = useInProcessWorker(db, 'rollup-traffic');
  /** Long enough for the backlog below many times over; the old run, chasing the traffic, never ended. */
  const RUN_DEADLINE_MS = 25_000;

  it('finishes, having flushed exactly the events stored up to the newest at its start', async () => {
    await store(db.pool, Array.from({ length: 100 }, (_, n) => nthEvent('old', n)));
    const traffic = startTraffic(db.pool);
    const workflowId = uniqueName('rollup-traffic');
    try {
      await waitFor('traffic to flow', () => traffic.inserted() >= 50);
      const seqBeforeStart = await maxSeq(db.pool);
      // Small chunks, so the flush's chunks take longer than the traffic takes to store more.
      const handle = await batch.client.workflow.start('rollupFlush', { taskQueue: batch.taskQueue, workflowId, args: [{ maxEventsPerChunk: 10, settleMs: 0 }] });
      const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`rollupFlush still running after ${RUN_DEADLINE_MS} ms of steady traffic`)), RUN_DEADLINE_MS));
      const result = (await Promise.race([handle.result(), deadline])) as FlushRollupsResult;
      const seqAtEnd = await maxSeq(db.pool);

      expect(result.stoppedBy).toBe('caught up');
      expect(result.targetSeq).toBeGreaterThanOrEqual(seqBeforeStart);
      expect(seqAtEnd).toBeGreaterThan(result.targetSeq); // traffic went on past the target meanwhile
      expect(result.watermark).toBe(result.targetSeq);
      expect(await watermark(db.pool)).toBe(result.targetSeq);
      expect(result.events).toBe(await eventsUpTo(db.pool, result.targetSeq));
    } finally {
      await traffic.stop();
      await batch.client.workflow.getHandle(workflowId).terminate('test over').catch(() => undefined);
    }

    // The next run takes the rest: the rollups then equal a recount of every event.
    const last = await batch.client.workflow.execute('rollupFlush', { taskQueue: batch.taskQueue, workflowId: uniqueName('rollup-rest'), args: [{ settleMs: 0 }] });
    expect(last).toMatchObject({ stoppedBy: 'caught up', targetSeq: await maxSeq(db.pool), watermark: await maxSeq(db.pool) });
    await expectRollupsExact(db.pool);
  }, 60_000);
});

describe('flushRollups, retried or out of time', () => {
  const db = useTestDatabase();
  const input = { maxEventsPerChunk: 2, settleMs: 0 };

  it('a retry keeps its run target; a spent time budget leaves the rest to the next run', async () => {
    const { flushRollups } = createRollupActivities({ pool: db.pool });
    await store(db.pool, Array.from({ length: 10 }, (_, n) => nthEvent('r', n)));
    const seqs = (await db.pool.query<{ seq: number }>('SELECT seq FROM events ORDER BY seq')).rows.map((r) => r.seq);

    // The attempt before recorded the run's target, then its worker died; more events came.
    const retry = new MockActivityEnvironment({ heartbeatDetails: { watermark: null, targetSeq: seqs[5] }, attempt: 2 });
    expect(await retry.run(flushRollups, input)).toMatchObject({ events: 6, watermark: seqs[5], targetSeq: seqs[5], stoppedBy: 'caught up' });
    expect(await watermark(db.pool)).toBe(seqs[5]);

    // An attempt whose time is up stops after the chunk it is in, saying how far it got.
    const hurried = await new MockActivityEnvironment().run(flushRollups, { ...input, timeBudgetMs: 0 });
    expect(hurried).toMatchObject({ chunks: 1, events: 2, watermark: seqs[7], targetSeq: seqs[9], stoppedBy: 'time budget' });

    const next = await new MockActivityEnvironment().run(flushRollups, input);
    expect(next).toMatchObject({ chunks: 1, events: 2, watermark: seqs[9], stoppedBy: 'caught up' });
    expect(await new MockActivityEnvironment().run(flushRollups, input)).toMatchObject({ chunks: 0, events: 0, watermark: null });
    await expectRollupsExact(db.pool);
  });

  it('heartbeats while a chunk waits, so a slow chunk is not taken for a dead worker, and a cancellation ends the wait at once', async () => {
    const { flushRollups } = createRollupActivities({ pool: db.pool });
    await store(db.pool, [nthEvent('wait', 0), nthEvent('wait', 1)]);
    await db.pool.query(`INSERT INTO job_watermarks (job) VALUES ('rollupFlush') ON CONFLICT DO NOTHING`);
    const before = await watermark(db.pool);
    // Another flush (or a repair) holds the watermark row: the chunk waits for it, up to its lock timeout.
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM job_watermarks WHERE job = 'rollupFlush' FOR UPDATE`);
      const env = new MockActivityEnvironment();
      let beats = 0;
      env.on('heartbeat', () => beats++);
      const run = env.run(flushRollups, { maxEventsPerChunk: 100, settleMs: 0 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      await new Promise((resolve) => setTimeout(resolve, 6500));
      // One beat before the chunk, then one every 5 s while it waits; before, none until it ended.
      expect(beats).toBeGreaterThanOrEqual(2);
      const cancelledAt = Date.now();
      env.cancel();
      // Ended by the cancellation, not by the lock being let go (it is held until the end).
      expect(String(await run)).toMatch(/cancel/i);
      expect(Date.now() - cancelledAt).toBeLessThan(3000);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await watermark(db.pool)).toBe(before);
  });
});
