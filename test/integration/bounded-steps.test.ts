/**
 * Job steps whose SQL is stuck (a lock never granted) on the real Postgres and Temporal: a
 * step's statements end when their bounds or the step's attempt end, so stuck attempts do
 * not pile up holding the worker's connections; and the worker's pool, when exhausted,
 * fails a checkout instead of waiting for ever.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flushRollupChunk, ROLLUP_JOB } from '../../src/store/batch/rollups';
import { reconcileHunts } from '../../src/store/correctness/reconcile';
import { createWorkerPool } from '../../src/worker/service';
import { useTestDatabase } from '../helpers/database-fixture';
import { applyInOneTransaction } from '../helpers/stored-events';
import { clueFound } from '../helpers/event-builders';
import { uniqueName, waitFor } from '../helpers/wait';
import { startInProcessWorker, temporalClient } from '../helpers/worker';

const db = useTestDatabase();

/** Holds `sql`'s row locks in an open transaction of its own until release(). */
async function holdLock(sql: string, params: unknown[] = []): Promise<{ pid: number; release(): Promise<void> }> {
  const client = await db.pool.connect();
  await client.query('BEGIN');
  await client.query(sql, params);
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  return {
    pid,
    async release() {
      await client.query('ROLLBACK');
      client.release();
    },
  };
}

/** Backends of this test's database waiting for a lock that `holder` holds. */
const waitingOn = async (holder: number) =>
  (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [holder])).rows[0]!.n;

async function storeEvents(huntId: string): Promise<void> {
  const events = [clueFound({ eventId: `${huntId}-c1`, huntId, occurredAt: new Date(Date.now() - 60_000).toISOString() })];
  await applyInOneTransaction(db.pool, events);
}

describe('a step stuck on a lock', () => {
  beforeAll(async () => {
    await storeEvents('h-bounds');
    await db.pool.query(`INSERT INTO job_watermarks (job) VALUES ($1) ON CONFLICT DO NOTHING`, [ROLLUP_JOB]);
  });

  it('gives up on the lock after its lock timeout (rollup chunk, reconcile group)', async () => {
    const rollupRow = await holdLock(`SELECT 1 FROM job_watermarks WHERE job = $1 FOR UPDATE`, [ROLLUP_JOB]);
    try {
      const started = Date.now();
      await expect(flushRollupChunk(db.pool, 1000, 0, { statementTimeoutMs: 10_000, lockTimeoutMs: 300 })).rejects.toMatchObject({ code: '55P03' });
      expect(Date.now() - started).toBeLessThan(5000);
      // Given up on the server too, while the lock is still held: nothing left queued on it.
      expect(await waitingOn(rollupRow.pid)).toBe(0);
    } finally {
      await rollupRow.release();
    }
    const fence = await holdLock(`SELECT 1 FROM hunts WHERE hunt_id = 'h-bounds' FOR UPDATE`);
    try {
      await expect(reconcileHunts(db.pool, ['h-bounds'], 'bounds-run', true, { statementTimeoutMs: 10_000, lockTimeoutMs: 300 })).rejects.toMatchObject({ code: '55P03' });
      expect(await waitingOn(fence.pid)).toBe(0);
    } finally {
      await fence.release();
    }
  });

  it('cancels the running statement when the step is aborted, before its connection goes back to the pool', async () => {
    const rollupRow = await holdLock(`SELECT 1 FROM job_watermarks WHERE job = $1 FOR UPDATE`, [ROLLUP_JOB]);
    try {
      const attempt = new AbortController();
      const flushing = flushRollupChunk(db.pool, 1000, 0, { statementTimeoutMs: 60_000, lockTimeoutMs: 60_000, signal: attempt.signal });
      flushing.catch(() => undefined);
      await waitFor('the flush to wait for the watermark row', async () => (await waitingOn(rollupRow.pid)) === 1);
      const aborted = Date.now();
      attempt.abort(new Error('the attempt timed out'));
      await expect(flushing).rejects.toMatchObject({ code: '57014' }); // query_canceled
      expect(Date.now() - aborted).toBeLessThan(5000);
      expect(await waitingOn(rollupRow.pid)).toBe(0);
    } finally {
      await rollupRow.release();
    }
  });

  it('fails a rollupFlush attempt on the lock, and leaves no attempt waiting behind it (Temporal)', async () => {
    const taskQueue = uniqueName('bounded');
    const { client, close } = await temporalClient();
    const worker = await startInProcessWorker(db.pool, taskQueue);
    const rollupRow = await holdLock(`SELECT 1 FROM job_watermarks WHERE job = $1 FOR UPDATE`, [ROLLUP_JOB]);
    let released = false;
    try {
      const handle = await client.workflow.start('rollupFlush', { taskQueue, workflowId: uniqueName('rollup-flush'), args: [{ settleMs: 0 }] });
      // The step's lock timeout (30 s) ends the attempt before the heartbeat timeout (60 s)
      // would, and ends its statement: the failure is the lock's, reported by the worker.
      const failure = await waitFor(
        'an attempt to fail on the lock',
        async () => {
          const pending = (await handle.describe()).raw.pendingActivities?.[0];
          return pending?.lastFailure?.message ? { attempt: pending.attempt, message: pending.lastFailure.message } : undefined;
        },
        { timeoutMs: 50_000, intervalMs: 500 },
      );
      expect(failure.message).toMatch(/lock timeout/);
      expect(await waitingOn(rollupRow.pid)).toBeLessThanOrEqual(1);
      await rollupRow.release();
      released = true;
      expect(await handle.result()).toMatchObject({ events: 1 });
    } finally {
      if (!released) await rollupRow.release();
      await worker.stop();
      await close();
    }
  }, 90_000);
});

describe("the worker's pool", () => {
  let pool: pg.Pool | undefined;
  afterAll(async () => {
    await pool?.end();
  });

  it('fails a checkout when every connection is held, instead of waiting for ever', async () => {
    pool = createWorkerPool({ databaseUrl: db.url }, () => undefined, 300);
    const held = await Promise.all(Array.from({ length: 10 }, () => pool!.connect()));
    try {
      await expect(pool.connect()).rejects.toThrow(/timeout/);
    } finally {
      for (const client of held) client.release();
    }
  });
});
