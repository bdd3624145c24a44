/**
 * Reprocess when the worker running its prepare step is killed (DESIGN invariant 5): the step
 * heartbeats, so a slow but live prepare is left alone while the heartbeat timeout finds a
 * dead worker within 30 s, and the retry on another worker finishes the job; without it the
 * retry waited out the 10-minute start-to-close timeout. Real `hunt worker` processes.
 */
import type { Client } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldEvents } from '../../src/rules/reference';
import type { ReprocessSummary } from '../../workflows/reprocess';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { projectionOf } from '../helpers/ingest';
import { storeEventsInOrder } from '../helpers/stored-events';
import { inOrderTraffic } from '../helpers/traffic';
import { uniqueName, waitFor } from '../helpers/wait';
import { startWorkerProcess, temporalClient, type WorkerProcess } from '../helpers/worker';

// The workflow's heartbeat timeout for prepareShadow and swapShadow (workflows/reprocess.ts).
const HEARTBEAT_TIMEOUT_MS = 30_000;

let db: TestDatabase;
let client: Client;
let closeClient: () => Promise<void>;

beforeAll(async () => {
  db = await createTestDatabase();
  ({ client, close: closeClient } = await temporalClient());
});
afterAll(async () => {
  await closeClient?.();
  await db?.dispose();
});

describe('reprocess with its worker killed in prepare', () => {
  it('keeps a slow prepare alive past the heartbeat timeout, and retries a killed one within it', { timeout: 240_000 }, async () => {
    const { events } = inOrderTraffic(500, 4);
    await storeEventsInOrder(db.pool, events);
    // An operator's session holds player_scores: prepare waits in CREATE TABLE .. (LIKE player_scores).
    const holder = new pg.Client({ connectionString: db.url, application_name: 'holds-player-scores' });
    await holder.connect();
    const taskQueue = uniqueName('reprocess-crash');
    const workers: WorkerProcess[] = [];
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE player_scores IN ACCESS EXCLUSIVE MODE');
      workers.push(startWorkerProcess(db.url, taskQueue));
      const handle = await client.workflow.start('reprocess', { taskQueue, workflowId: uniqueName('reprocess-crash'), args: [{ projection: 'leaderboard' }] });
      await waitFor('prepare waiting for player_scores', () => prepareWaiting(db.pool), { timeoutMs: 60_000 });

      // Alive but slow, longer than the heartbeat timeout: its heartbeats keep the first attempt.
      await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_TIMEOUT_MS + 6_000));
      expect(await pendingAttempts(handle)).toEqual([{ type: 'prepareShadow', attempt: 1 }]);

      await workers[0]?.kill('SIGKILL');
      const killedAt = Date.now();
      workers.push(startWorkerProcess(db.url, taskQueue));
      await holder.query('ROLLBACK');
      // A retry within the heartbeat timeout (plus backoff and a start-up), not after the
      // 10-minute start-to-close timeout: the whole job is done well before that.
      const result = (await Promise.race([
        handle.result(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('no retry of the killed prepare within 90 s')), 90_000)),
      ])) as ReprocessSummary;
      console.info(`reprocess done ${((Date.now() - killedAt) / 1000).toFixed(1)} s after its worker was killed in prepare`);
      expect(result).toMatchObject({ projection: 'leaderboard', huntsTotal: new Set(events.map((e) => e.huntId)).size });
      const { rows } = await db.pool.query(`SELECT phase, job_id FROM reprocess_jobs`);
      expect(rows).toEqual([{ phase: 'swapped', job_id: `${handle.workflowId}/${handle.firstExecutionRunId}` }]);
      // What the retry swapped in is the whole rebuild, not the killed attempt's leftovers.
      expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    } finally {
      await holder.end();
      for (const worker of workers) await worker.kill('SIGKILL');
    }
  });
});

async function prepareWaiting(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query(
    `SELECT 1 FROM pg_stat_activity
      WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'CREATE TABLE "player_scores_shadow"%'`,
  );
  return rows.length > 0;
}

async function pendingAttempts(handle: Awaited<ReturnType<Client['workflow']['start']>>): Promise<{ type: string | null | undefined; attempt: number | null | undefined }[]> {
  const { raw } = await handle.describe();
  return (raw.pendingActivities ?? []).map((a) => ({ type: a.activityType?.name, attempt: a.attempt }));
}
