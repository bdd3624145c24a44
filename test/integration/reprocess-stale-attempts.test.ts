/**
 * Reprocess attempts that come back after their step went on without them (DESIGN invariant
 * 5): a prepare attempt frozen past its heartbeat timeout (a paused VM) wakes while its retry's
 * fill runs, or after the swap; a swap whose worker died after the commit is retried after the
 * operator put back what they removed for it. Neither may undo or fail what the job did.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import type pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createReprocessActivities } from '../../src/batch/reprocess-job';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';
import { foldEvents } from '../../src/rules/reference';
import { catchUpShadow, fillShadowChunk, prepareShadow, resetJob, ReprocessSupersededError, settleCancelledSwap, swapShadow } from '../../src/store/batch/reprocess';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { projectionOf } from '../helpers/ingest';
import { storeEventsInOrder } from '../helpers/stored-events';
import { inOrderTraffic } from '../helpers/traffic';

const config = loadConfig();
const logger = createLogger({ logLevel: 'warn' });

/** A database of the test's own (dropped when it ends) holding `count` in-order events. */
async function storeWith(count: number, seed: number): Promise<{ scratch: TestDatabase; events: ReturnType<typeof inOrderTraffic>['events'] }> {
  const scratch = await createTestDatabase();
  onTestFinished(() => scratch.dispose());
  const { events } = inOrderTraffic(count, seed);
  await storeEventsInOrder(scratch.pool, events);
  return { scratch, events };
}

const jobRecord = async (pool: pg.Pool) =>
  (await pool.query(`SELECT job_id, phase, started_seq, fill_cursor, hunts_done, hunts_total, shadow_rows, updated_at FROM reprocess_jobs WHERE projection = 'leaderboard'`)).rows[0];

const liveTableOid = async (pool: pg.Pool) => (await pool.query<{ oid: number }>(`SELECT 'player_scores'::regclass::oid AS oid`)).rows[0]!.oid;

describe('a prepare attempt that wakes after its job went on', () => {
  it('leaves a filling job as it is and reports what its record says; the fill goes on and swaps the exact projection', async () => {
    const { scratch, events } = await storeWith(1500, 21);
    // Attempt 1 froze before its first transaction; attempt 2 (the same job, the same scheduled time) prepares.
    const scheduledAt = new Date();
    const prepared = await prepareShadow(scratch.pool, 'leaderboard', 'run-j', 5000, scheduledAt);
    expect(await fillShadowChunk(scratch.pool, 'leaderboard', 'run-j', 2)).toMatchObject({ huntsDone: 2, done: false });
    const filling = await jobRecord(scratch.pool);
    expect(filling).toMatchObject({ phase: 'filling', fill_cursor: expect.any(String), hunts_done: 2 });

    // Attempt 1 wakes: neither its first transaction nor its whole prepare resets the job.
    await expect(resetJob(scratch.pool, 'leaderboard', 'run-j', scheduledAt)).rejects.toBeInstanceOf(ReprocessSupersededError);
    expect(await prepareShadow(scratch.pool, 'leaderboard', 'run-j', 5000, scheduledAt)).toEqual(prepared);
    expect(await jobRecord(scratch.pool)).toEqual(filling);

    // The fill's next chunk goes on from the cursor (before, it failed: "cannot fill in phase preparing").
    expect(await fillShadowChunk(scratch.pool, 'leaderboard', 'run-j', 2)).toMatchObject({ huntsDone: 4, done: false });
    for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-j', 2));
    expect((await catchUpShadow(scratch.pool, 'leaderboard', 'run-j', 5000, 10_000)).complete).toBe(true);
    expect(await swapShadow(scratch.pool, 'leaderboard', 'run-j', 5000)).toMatchObject({ startedSeq: prepared.startedSeq });
    expect(await projectionOf(scratch.pool)).toEqual(foldEvents(events));
  });

  it('leaves a swapped job swapped, even with a view put back on a live table, and a cancelled one cancelled', async () => {
    const { scratch, events } = await storeWith(600, 22);
    const scheduledAt = new Date();
    const prepared = await prepareShadow(scratch.pool, 'leaderboard', 'run-k', 5000, scheduledAt);
    for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-k', 5));
    await catchUpShadow(scratch.pool, 'leaderboard', 'run-k', 5000, 10_000);
    await swapShadow(scratch.pool, 'leaderboard', 'run-k', 5000);
    // The operator puts back the view they dropped for the swap.
    await scratch.pool.query('CREATE VIEW v AS SELECT * FROM player_scores');
    const swapped = await jobRecord(scratch.pool);
    const live = await liveTableOid(scratch.pool);

    // Before: the job went back to 'preparing' (or the view failed the attempt as blocked).
    expect(await prepareShadow(scratch.pool, 'leaderboard', 'run-k', 5000, scheduledAt)).toEqual(prepared);
    expect(await jobRecord(scratch.pool)).toEqual(swapped);
    expect(swapped).toMatchObject({ phase: 'swapped' });
    expect(await liveTableOid(scratch.pool)).toBe(live);
    expect(await projectionOf(scratch.pool)).toEqual(foldEvents(events));
    await scratch.pool.query('DROP VIEW v');

    // A job cancelled during its swap step is over: a prepare attempt waking then does not revive it.
    await prepareShadow(scratch.pool, 'leaderboard', 'run-c', 5000, scheduledAt);
    for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-c', 5));
    expect(await settleCancelledSwap(scratch.pool, 'leaderboard', 'run-c', 5000)).toBeUndefined();
    const cancelled = await jobRecord(scratch.pool);
    await expect(prepareShadow(scratch.pool, 'leaderboard', 'run-c', 5000, scheduledAt)).rejects.toThrow(/run run-c's prepare stops: the job was cancelled meanwhile/);
    expect(await jobRecord(scratch.pool)).toEqual(cancelled);
    expect(cancelled).toMatchObject({ phase: 'cancelled' });
  });
});

describe('a swap step retried after its swap committed', () => {
  it('reports the swap without checking the live tables again, though a view is back on one', async () => {
    const { scratch, events } = await storeWith(600, 23);
    const activities = createReprocessActivities({ pool: scratch.pool, logger, config });
    const step = { projection: 'leaderboard', jobId: 'run-w', lockTimeoutMs: 5000 };
    await new MockActivityEnvironment({ scheduledTimestampMs: Date.now() }).run(activities.prepareShadow, step);
    for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-w', 5));
    await new MockActivityEnvironment().run(activities.catchUpShadow, { ...step, maxEventsPerRound: 10_000, smallRound: 10, maxRounds: 5 });
    // The swap commits; its worker dies before reporting. Before the retry, the operator
    // restores the view they dropped for the swap.
    const swapped = await new MockActivityEnvironment().run(activities.swapShadow, step);
    await scratch.pool.query('CREATE VIEW v AS SELECT * FROM player_scores');

    // Before: the retry failed for good as ReprocessBlocked, the job failed though it had swapped.
    expect(await new MockActivityEnvironment({ attempt: 2 }).run(activities.swapShadow, step)).toEqual(swapped);
    expect((await scratch.pool.query(`SELECT phase FROM reprocess_jobs`)).rows).toEqual([{ phase: 'swapped' }]);
    expect(await projectionOf(scratch.pool)).toEqual(foldEvents(events));
  });
});
