/**
 * Reprocess against the real services: the job rebuilds corrupted projections from the raw
 * events and swaps them in while the real hot path keeps ingesting, with no event lost or
 * counted twice; steps are idempotent and a newer run supersedes an older one (DESIGN
 * invariant 5); bad input fails at once, clearly. The rules themselves (recompute and merge
 * vs the reference fold) are tested in test/unit/recompute-sql.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ActivityFailure, ApplicationFailure, CancelledFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { Partitioners } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createReprocessActivities, type CatchUpInput } from '../../src/batch/reprocess-job';
import type { TrafficRecord } from '../../src/demo/traffic';
import type { HuntEvent } from '../../src/events/schema';
import { loadConfig, projectRoot } from '../../src/config';
import { createLogger } from '../../src/log';
import { foldEvents, leaderboardOf } from '../../src/rules/reference';
import {
  catchUpShadow,
  FILL_EVENTS_PER_CHUNK,
  fillShadowChunk,
  prepareShadow,
  ReprocessBlockedError,
  ReprocessCancelledError,
  ReprocessStateError,
  ReprocessSupersededError,
  resetJob,
  settleCancelledSwap,
  startFill,
  swapShadow,
  type SwapResult,
} from '../../src/store/batch/reprocess';
import { FenceBusyError, LiveTablesBusyError, MaintenanceBusyError } from '../../src/store/batch/fence-locks';
import { HUNT_JOB_KIND } from '../../src/temporal/search-attributes';
import { progressQuery, type ReprocessSummary } from '../../workflows/reprocess';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { storeEventsInOrder } from '../helpers/stored-events';
import { createTestTopics, projectionOf, startIngestProcess, testKafka, waitCaughtUp } from '../helpers/ingest';
import { quietTemporalRuntime } from '../helpers/temporal';
import { inOrderTraffic } from '../helpers/traffic';
import { uniqueName, waitFor } from '../helpers/wait';
import { temporalClient } from '../helpers/worker';

const config = loadConfig();
const logger = createLogger({ logLevel: 'warn' });
let db: TestDatabase;
let client: Client;
let closeClient: () => Promise<void>;
let workflowBundle: { code: string };

beforeAll(async () => {
  quietTemporalRuntime();
  db = await createTestDatabase();
  ({ client, close: closeClient } = await temporalClient());
  // Bundled once: every test runs its own short-lived worker on its own task queue.
  workflowBundle = await bundleWorkflowCode({
    workflowsPath: path.join(projectRoot, 'workflows/index.ts'),
    logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
  });
});
afterAll(async () => {
  await closeClient?.();
  await db?.dispose();
});

async function withWorker<T>(pool: pg.Pool, run: (taskQueue: string) => Promise<T>, activities: object = createReprocessActivities({ pool, logger, config })): Promise<T> {
  const taskQueue = uniqueName('reprocess');
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  try {
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue,
      workflowBundle,
      activities,
    });
    return await worker.runUntil(run(taskQueue));
  } finally {
    await connection.close();
  }
}

/** A database of the test's own (dropped when it ends) holding `count` in-order events, its shadows prepared by `runId`. */
async function preparedStore(count: number, seed: number, runId: string): Promise<{ scratch: TestDatabase; events: HuntEvent[] }> {
  const scratch = await createTestDatabase();
  onTestFinished(() => scratch.dispose());
  const { events } = inOrderTraffic(count, seed);
  await storeEventsInOrder(scratch.pool, events);
  await prepareShadow(scratch.pool, 'leaderboard', runId, 5000);
  return { scratch, events };
}

/** Catches `runId`'s shadows up and swaps them in; the live projection must then be the reference fold of `events`. */
async function swapAndCompare(pool: pg.Pool, runId: string, events: HuntEvent[]): Promise<SwapResult> {
  expect((await catchUpShadow(pool, 'leaderboard', runId, 5000, 10_000)).complete).toBe(true);
  const swapped = await swapShadow(pool, 'leaderboard', runId, 5000);
  expect(await projectionOf(pool)).toEqual(foldEvents(events));
  return swapped;
}

const indexCount = async (pool: pg.Pool, table: string) =>
  (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_index WHERE indrelid = $1::regclass', [table])).rows[0]?.n;

describe('reprocess steps', () => {
  it("leaves the fill's bound alone when a stalled prepare attempt goes on after its retry has prepared and the fill has begun", async () => {
    const scratch = await createTestDatabase();
    onTestFinished(() => scratch.dispose());
    const { events } = inOrderTraffic(3000, 17);
    await storeEventsInOrder(scratch.pool, events.slice(0, 2000));
    // Attempt 1 resets the job, then stalls (a frozen worker) past its heartbeat timeout.
    const stalled = await resetJob(scratch.pool, 'leaderboard', 'run-s', new Date());
    // Attempt 2 prepares, and the fill begins; events keep coming.
    const prepared = await prepareShadow(scratch.pool, 'leaderboard', 'run-s', 5000);
    expect((await fillShadowChunk(scratch.pool, 'leaderboard', 'run-s', 2)).huntsDone).toBe(2);
    await storeEventsInOrder(scratch.pool, events.slice(2000));
    // Attempt 1 wakes: before, it set the bound to the newest seq, and the hunts filled
    // before it never got the events stored in between.
    await expect(startFill(scratch.pool, 'leaderboard', 'run-s', 5000, stalled, 5)).rejects.toBeInstanceOf(ReprocessSupersededError);
    const { rows } = await scratch.pool.query<{ started_seq: number }>(`SELECT started_seq FROM reprocess_jobs WHERE projection = 'leaderboard'`);
    expect(rows[0]?.started_seq).toBe(prepared.startedSeq);
    for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-s', 2));
    await swapAndCompare(scratch.pool, 'run-s', events);

    // Two attempts reset the job, neither has started the fill: only the later one's mark starts it.
    const first = await resetJob(scratch.pool, 'leaderboard', 'run-t', new Date());
    const later = await resetJob(scratch.pool, 'leaderboard', 'run-t', new Date());
    await expect(startFill(scratch.pool, 'leaderboard', 'run-t', 5000, first, 5)).rejects.toBeInstanceOf(ReprocessSupersededError);
    await expect(startFill(scratch.pool, 'leaderboard', 'run-t', 5000, later, 5)).resolves.toMatchObject({ huntsTotal: 5 });
  });

  it('resume from committed progress, merge late events, reject a superseded run, and report a finished swap again', async () => {
    const scratch = await createTestDatabase();
    try {
      const { events } = inOrderTraffic(3000, 5);
      await storeEventsInOrder(scratch.pool, events.slice(0, 2000));
      const first = await prepareShadow(scratch.pool, 'leaderboard', 'run-a', 5000);
      expect(first).toEqual({ startedSeq: expect.any(Number), huntsTotal: 5 });
      expect(await fillShadowChunk(scratch.pool, 'leaderboard', 'run-a', 2)).toEqual({ huntsDone: 2, huntsTotal: 5, done: false });
      await expect(swapShadow(scratch.pool, 'leaderboard', 'run-a', 5000)).rejects.toBeInstanceOf(ReprocessStateError);

      // A second run takes over; the first one's steps now fail instead of writing.
      const second = await prepareShadow(scratch.pool, 'leaderboard', 'run-b', 5000);
      await expect(fillShadowChunk(scratch.pool, 'leaderboard', 'run-a', 2)).rejects.toBeInstanceOf(ReprocessSupersededError);
      await storeEventsInOrder(scratch.pool, events.slice(2000, 2500)); // stored during the fill
      // In two lanes: each chunk's two hunts are recomputed on two connections at once.
      for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-b', 2, 2));
      // The filled shadows have statistics: the planner needs them right after the swap.
      const { rows: analyzed } = await scratch.pool.query<{ tablename: string }>(
        `SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = 'public' AND tablename LIKE '%shadow' ORDER BY tablename`,
      );
      expect(analyzed.map((r) => r.tablename)).toEqual(['clue_credits_shadow', 'hunt_stats_shadow', 'player_scores_shadow', 'treasure_winners_shadow']);

      // Catch-up rounds are bounded and resume from the covered seq they committed.
      const round = await catchUpShadow(scratch.pool, 'leaderboard', 'run-b', 5000, 300);
      expect(round).toEqual({ events: expect.any(Number), coveredSeq: second.startedSeq + 300, complete: false });
      expect((await catchUpShadow(scratch.pool, 'leaderboard', 'run-b', 5000, 300)).complete).toBe(true);
      expect(await catchUpShadow(scratch.pool, 'leaderboard', 'run-b', 5000, 300)).toMatchObject({ events: 0, complete: true });

      await storeEventsInOrder(scratch.pool, events.slice(2500)); // stored after the catch-up: merged under the fence
      await expect(swapShadow(scratch.pool, 'leaderboard', 'run-a', 5000)).rejects.toBeInstanceOf(ReprocessSupersededError);
      const swapped = await swapShadow(scratch.pool, 'leaderboard', 'run-b', 5000);
      const expected = foldEvents(events);
      expect(swapped).toMatchObject({
        rows: expected.players.length + expected.clueCredits.length + expected.hintPenalties.length + expected.treasureWinners.length,
        startedSeq: second.startedSeq,
        eventsCaughtUp: events.length - 2000,
        fencedEvents: events.length - 2500,
        maxSeq: await maxSeq(scratch.pool),
      });
      expect(await swapShadow(scratch.pool, 'leaderboard', 'run-b', 5000)).toEqual(swapped);
      expect(await projectionOf(scratch.pool)).toEqual(expected);
      // A retried swap step's catch-up after the swap committed asks for no fence: with a
      // hot-path transaction holding hunts, it answers at once (before, it failed as busy).
      const hotPath = await scratch.pool.connect();
      try {
        await hotPath.query('BEGIN');
        await hotPath.query('LOCK TABLE hunts IN ROW EXCLUSIVE MODE');
        expect(await catchUpShadow(scratch.pool, 'leaderboard', 'run-b', 200, 300)).toEqual({ events: 0, coveredSeq: swapped.maxSeq, complete: true });
      } finally {
        await hotPath.query('ROLLBACK');
        hotPath.release();
      }
    } finally {
      await scratch.dispose();
    }
  });
});

describe('the fill\'s chunks', () => {
  it('fill a chunk again, each row once, after an extra lane committed and the cursor\'s transaction failed, however the retry cuts it', async () => {
    // The shadows are filled without indexes (built at the fill's end), so nothing would
    // refuse a hunt's rows written twice until that build, and the job would fail there.
    const { scratch, events } = await preparedStore(1500, 8, 'run-open');
    expect(await indexCount(scratch.pool, 'player_scores_shadow')).toBe(0);
    // Lanes take hunts in byte order: the first hunt goes to the lane that moves the cursor.
    const { rows } = await scratch.pool.query<{ hunt_id: string }>('SELECT min(hunt_id) AS hunt_id FROM events');
    const firstHunt = rows[0]?.hunt_id as string;
    await scratch.pool.query(`ALTER TABLE player_scores_shadow ADD CONSTRAINT first_lane_fails CHECK (hunt_id <> ${pg.escapeLiteral(firstHunt)})`);
    await expect(fillShadowChunk(scratch.pool, 'leaderboard', 'run-open', 4, 2)).rejects.toThrow(/first_lane_fails/);
    const job = async () => (await scratch.pool.query('SELECT fill_cursor, fill_mark FROM reprocess_jobs')).rows[0];
    expect(await job()).toEqual({ fill_cursor: null, fill_mark: expect.any(String) });
    // The other lane's hunts, committed: the attempt ended only after that lane did.
    const { rows: left } = await scratch.pool.query<{ n: number }>('SELECT count(DISTINCT hunt_id)::int AS n FROM player_scores_shadow');
    expect(left[0]?.n).toBe(2);

    // The retry's chunk is smaller (a hunt's count grows, a new hunt comes): the hunts the
    // failed attempt wrote past it are cleared too, or the next chunk would write them twice.
    await scratch.pool.query('ALTER TABLE player_scores_shadow DROP CONSTRAINT first_lane_fails');
    expect(await fillShadowChunk(scratch.pool, 'leaderboard', 'run-open', 2, 2)).toMatchObject({ huntsDone: 2, done: false });
    expect(await job()).toMatchObject({ fill_mark: null });
    for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-open', 2, 2));
    expect(await indexCount(scratch.pool, 'player_scores_shadow')).toBe(await indexCount(scratch.pool, 'player_scores'));
    expect(await job()).toMatchObject({ fill_mark: null });
    const expected = foldEvents(events);
    // Rows the failed attempt left were never counted; deleting them takes nothing off.
    expect(await swapAndCompare(scratch.pool, 'run-open', events)).toMatchObject({
      rows: expected.players.length + expected.clueCredits.length + expected.hintPenalties.length + expected.treasureWinners.length,
    });
  });

  it('fill each row once when two attempts of the fill run at once (a retry while a cut-off worker still runs)', async () => {
    const { scratch, events } = await preparedStore(1500, 11, 'run-twin');
    const retried: string[] = [];
    for (let done = false; !done; ) {
      const attempts = await Promise.allSettled([1, 2].map(() => fillShadowChunk(scratch.pool, 'leaderboard', 'run-twin', 2, 2)));
      for (const attempt of attempts) {
        if (attempt.status === 'fulfilled') done ||= attempt.value.done;
        else retried.push((attempt.reason as Error).message);
      }
    }
    // The only failures are the retries the marks ask for; nothing was written twice (the
    // indexes' build would have failed), nor left out.
    for (const message of retried) expect(message).toMatch(/another attempt of the fill marked the job|found the job marked by another attempt/);
    await swapAndCompare(scratch.pool, 'run-twin', events);
  });

  it('has a key written twice fail the index build as the fill\'s bug, and a fill an older version finished get its indexes at the catch-up', async () => {
    const { scratch, events } = await preparedStore(600, 9, 'run-twice');
    expect((await fillShadowChunk(scratch.pool, 'leaderboard', 'run-twice', 1000)).done).toBe(false);
    await scratch.pool.query('INSERT INTO clue_credits_shadow SELECT * FROM clue_credits_shadow LIMIT 1');
    const finish = fillShadowChunk(scratch.pool, 'leaderboard', 'run-twice', 1000);
    await expect(finish).rejects.toBeInstanceOf(ReprocessStateError);
    await expect(finish).rejects.toThrow(/clue_credits_shadow holds a key twice .*or the fill wrote a row twice \(a bug\)\. Start reprocess again/);

    // An older version's fill: its last step analyzed shadows it had made with their
    // indexes, and marked the job filled; these have none.
    await prepareShadow(scratch.pool, 'leaderboard', 'run-old', 5000);
    while (!(await fillShadowChunk(scratch.pool, 'leaderboard', 'run-old', 1000)).done);
    for (const table of ['player_scores_shadow', 'clue_credits_shadow', 'treasure_winners_shadow']) {
      const { rows } = await scratch.pool.query<{ name: string }>(`SELECT conname AS name FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`, [table]);
      for (const { name } of rows) await scratch.pool.query(`ALTER TABLE ${table} DROP CONSTRAINT ${name}`);
    }
    await scratch.pool.query('DROP INDEX player_scores_shadow_hunt_id_score_player_id_idx');
    expect(await indexCount(scratch.pool, 'clue_credits_shadow')).toBe(0);
    const later = inOrderTraffic(200, 10).events; // merged by the catch-up: with ON CONFLICT, on the keys
    await storeEventsInOrder(scratch.pool, later);
    await swapAndCompare(scratch.pool, 'run-old', [...events, ...later]);
  });

  it('end at about FILL_EVENTS_PER_CHUNK events by the hunts\' own counts, and a wrong count changes only their size', async () => {
    const scratch = await createTestDatabase();
    try {
      const { events } = inOrderTraffic(1500, 6);
      await storeEventsInOrder(scratch.pool, events);
      // Counts as the hot path keeps them, but wrong (what reprocess repairs): the first two
      // hunts claim half a chunk each, the third a whole one, the rest none at all.
      const { rows } = await scratch.pool.query<{ hunt_id: string }>('SELECT DISTINCT hunt_id FROM events ORDER BY hunt_id');
      const counts = [FILL_EVENTS_PER_CHUNK / 2, FILL_EVENTS_PER_CHUNK / 2, FILL_EVENTS_PER_CHUNK];
      for (const [i, { hunt_id }] of rows.entries()) {
        await scratch.pool.query(
          'INSERT INTO hunts (hunt_id, events_applied) VALUES ($1, $2) ON CONFLICT (hunt_id) DO UPDATE SET events_applied = excluded.events_applied',
          [hunt_id, counts[i] ?? 0],
        );
      }
      await prepareShadow(scratch.pool, 'leaderboard', 'run-sized', 5000);
      const done: number[] = [];
      for (let progress = { done: false, huntsDone: 0 }; !progress.done; done.push(progress.huntsDone)) {
        progress = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-sized', 100, 2);
      }
      expect(done).toEqual([2, 3, rows.length, rows.length]);
      await swapShadow(scratch.pool, 'leaderboard', 'run-sized', 5000);
      expect(await projectionOf(scratch.pool)).toEqual(foldEvents(events));
    } finally {
      await scratch.dispose();
    }
  });
});

describe('the prepare and swap activities', () => {
  it('heartbeat, and the swap catches up outside the fence first: events stored since the catch-up step are not merged under it', async () => {
    const scratch = await createTestDatabase();
    try {
      const { events } = inOrderTraffic(3000, 5);
      await storeEventsInOrder(scratch.pool, events.slice(0, 2000));
      const activities = createReprocessActivities({ pool: scratch.pool, logger, config });
      const step = { projection: 'leaderboard', jobId: 'run-s', lockTimeoutMs: 5000 };
      const beats = { prepare: 0, swap: 0 };
      const prepareAttempt = new MockActivityEnvironment({ scheduledTimestampMs: Date.now() });
      prepareAttempt.on('heartbeat', () => beats.prepare++);
      await prepareAttempt.run(activities.prepareShadow, step);
      for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-s', 5));
      await new MockActivityEnvironment().run(activities.catchUpShadow, { ...step, maxEventsPerRound: 1000, smallRound: 10, maxRounds: 5 });

      // Stored after the catch-up step, as while a killed swap waits for its retry.
      await storeEventsInOrder(scratch.pool, events.slice(2000));
      const swapAttempt = new MockActivityEnvironment();
      swapAttempt.on('heartbeat', () => beats.swap++);
      const swapped = await swapAttempt.run(activities.swapShadow, step);
      expect(swapped).toMatchObject({ eventsCaughtUp: events.length - 2000, fencedEvents: 0 });
      expect(beats.prepare).toBeGreaterThan(0);
      expect(beats.swap).toBeGreaterThan(0);
      expect(await projectionOf(scratch.pool)).toEqual(foldEvents(events));

      // A retry of the swap step after its swap committed (the worker died before reporting),
      // cancelled meanwhile: it reports the swap, not a cancellation (the job would say
      // cancelled with its tables swapped).
      const retry = new MockActivityEnvironment({ attempt: 2 });
      retry.cancel();
      expect(await retry.run(activities.swapShadow, step)).toEqual(swapped);
    } finally {
      await scratch.dispose();
    }
  });
});

describe('the swap, when ingest stores events faster than its catch-up merges them', () => {
  it('does not take the fence with an unbounded rest to merge under it: it fails to be retried, and swaps once caught up', async () => {
    const scratch = await createTestDatabase();
    try {
      const { events } = inOrderTraffic(1500, 5);
      await storeEventsInOrder(scratch.pool, events.slice(0, 500));
      // Two rounds of 100 events: fewer than what is stored after the fill.
      const slow = createReprocessActivities({ pool: scratch.pool, logger, config }, { preSwapCatchUp: { maxEventsPerRound: 100, smallRound: 10, maxRounds: 2 } });
      const step = { projection: 'leaderboard', jobId: 'run-behind', lockTimeoutMs: 5000 };
      await new MockActivityEnvironment({ scheduledTimestampMs: Date.now() }).run(slow.prepareShadow, step);
      for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-behind', 5));
      await storeEventsInOrder(scratch.pool, events.slice(500));

      const behind = new MockActivityEnvironment().run(slow.swapShadow, step);
      await expect(behind).rejects.toBeInstanceOf(ApplicationFailure);
      await expect(behind).rejects.toMatchObject({ nonRetryable: false, type: 'ReprocessCatchUpBehind', message: expect.stringMatching(/not swapping/), nextRetryDelay: '1 second' });
      // Nothing was swapped or merged under the fence; the rounds' work stays.
      const { rows } = await scratch.pool.query<{ phase: string; fenced_events: number | null; events_caught_up: number }>(
        `SELECT phase, fenced_events, events_caught_up FROM reprocess_jobs WHERE projection = 'leaderboard'`,
      );
      expect(rows).toEqual([{ phase: 'filled', fenced_events: null, events_caught_up: 200 }]);

      // The retry, with rounds that keep up, swaps in the whole projection.
      const activities = createReprocessActivities({ pool: scratch.pool, logger, config });
      expect(await new MockActivityEnvironment({ attempt: 2 }).run(activities.swapShadow, step)).toMatchObject({ eventsCaughtUp: events.length - 500, fencedEvents: 0 });
      expect(await projectionOf(scratch.pool)).toEqual(foldEvents(events));
    } finally {
      await scratch.dispose();
    }
  });
});

/**
 * The fill step on 50 stored events after its prepare, with `breakIt` done to the database in
 * between; resolves to what the step threw (a step that would retry for ever throws nothing
 * that says so).
 */
async function fillAfter(jobId: string, breakIt: (pool: pg.Pool) => Promise<unknown>): Promise<unknown> {
  const scratch = await createTestDatabase();
  try {
    await storeEventsInOrder(scratch.pool, inOrderTraffic(50, 6).events);
    const activities = createReprocessActivities({ pool: scratch.pool, logger, config });
    const step = { projection: 'leaderboard', jobId, lockTimeoutMs: 5000 };
    await new MockActivityEnvironment({ scheduledTimestampMs: Date.now() }).run(activities.prepareShadow, step);
    await breakIt(scratch.pool);
    return await new MockActivityEnvironment().run(activities.fillShadow, { ...step, huntsPerChunk: 10, timeBudgetMs: 5000 }).then(
      () => 'filled',
      (err: unknown) => err,
    );
  } finally {
    await scratch.dispose();
  }
}

describe('a fill that would fail the same way on every try', () => {
  it('fails the step for good when a table was dropped under the running job, saying to start again', async () => {
    const failure = await fillAfter('run-dropped', (pool) => pool.query('DROP TABLE player_scores_shadow')); // an operator clearing "leftovers"
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ nonRetryable: true, type: 'ReprocessState', message: expect.stringMatching(/was dropped while it ran; start reprocess again/) });
  });

  it('fails the step for good on a chunk past the server\'s temp_file_limit, saying to raise it or make chunks smaller', async () => {
    // What Postgres raises when a sort spills past temp_file_limit (a superuser's setting).
    const failure = await fillAfter('run-temp-files', async (pool) => {
      await pool.query(`CREATE FUNCTION spill_past_limit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'temporary file size exceeds temp_file_limit (1kB)' USING ERRCODE = '53400'; END $$`);
      await pool.query('CREATE TRIGGER spill_past_limit BEFORE INSERT ON player_scores_shadow FOR EACH ROW EXECUTE FUNCTION spill_past_limit()');
    });
    expect(failure).toMatchObject({ nonRetryable: true, type: 'ReprocessBlocked', message: expect.stringMatching(/temp_file_limit.*Raise temp_file_limit, or start reprocess again with a smaller huntsPerChunk/) });
  });
});

describe('a fill cancelled while its chunk runs', () => {
  it('cancels the chunk\'s statement at once, rather than let it run on holding the job row the next run waits for', async () => {
    const scratch = await createTestDatabase();
    const holder = new pg.Client({ connectionString: scratch.url });
    try {
      await storeEventsInOrder(scratch.pool, inOrderTraffic(50, 6).events);
      const activities = createReprocessActivities({ pool: scratch.pool, logger, config });
      const step = { projection: 'leaderboard', jobId: 'run-cancelled-fill', lockTimeoutMs: 5000 };
      await new MockActivityEnvironment({ scheduledTimestampMs: Date.now() }).run(activities.prepareShadow, step);
      // A chunk that cannot end by itself: its writes wait for a lock another session holds (a
      // stand-in for a recompute of a hunt that takes an hour).
      await holder.connect();
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE player_scores_shadow IN ACCESS EXCLUSIVE MODE');
      const env = new MockActivityEnvironment();
      const fill = env.run(activities.fillShadow, { ...step, huntsPerChunk: 10, timeBudgetMs: 60_000 }).then(
        () => 'filled',
        (err: unknown) => err,
      );
      await waitFor('the chunk waiting for the lock', async () => {
        const { rows } = await scratch.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
        return rows[0]!.n > 0;
      });
      const cancelledAt = Date.now();
      env.cancel();
      const outcome = await Promise.race([fill, new Promise((resolve) => setTimeout(() => resolve('still running'), 10_000))]);
      expect(outcome).not.toBe('still running');
      expect(outcome).not.toBe('filled');
      expect(Date.now() - cancelledAt).toBeLessThan(5000);
      // Nothing of the cancelled attempt waits on the lock any more.
      const { rows } = await scratch.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
      expect(rows[0]!.n).toBe(0);
    } finally {
      await holder.end().catch(() => undefined);
      await scratch.dispose();
    }
  }, 60_000);
});

describe('who owns the job', () => {
  it('a late retry of an older run\'s prepare fails as superseded instead of taking the shadows back from a newer run', async () => {
    const scratch = await createTestDatabase();
    try {
      await storeEventsInOrder(scratch.pool, inOrderTraffic(200, 3).events);
      const older = new Date(Date.now() - 60_000);
      await prepareShadow(scratch.pool, 'leaderboard', 'run-old', 5000, older);
      expect(await prepareShadow(scratch.pool, 'leaderboard', 'run-old', 5000, older)).toMatchObject({ startedSeq: expect.any(Number) }); // its own retry
      await prepareShadow(scratch.pool, 'leaderboard', 'run-new', 5000, new Date());
      await fillShadowChunk(scratch.pool, 'leaderboard', 'run-new', 1);

      // The older run's worker died in prepare; its retry comes after the newer run started.
      await expect(prepareShadow(scratch.pool, 'leaderboard', 'run-old', 5000, older)).rejects.toThrow(ReprocessSupersededError);
      const { rows } = await scratch.pool.query('SELECT job_id, phase, hunts_done FROM reprocess_jobs');
      expect(rows).toEqual([{ job_id: 'run-new', phase: 'filling', hunts_done: 1 }]);
      for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-new', 1));
      await catchUpShadow(scratch.pool, 'leaderboard', 'run-new', 5000, 1000);
      expect(await swapShadow(scratch.pool, 'leaderboard', 'run-new', 5000)).toMatchObject({ startedSeq: expect.any(Number) });
    } finally {
      await scratch.dispose();
    }
  });
});

describe('a job cancelled during its swap step', () => {
  it('is marked cancelled when its swap has not committed, and no attempt still running can swap after; one that swapped reports it', async () => {
    const scratch = await createTestDatabase();
    try {
      await storeEventsInOrder(scratch.pool, inOrderTraffic(200, 3).events);
      const fill = async (runId: string) => {
        await prepareShadow(scratch.pool, 'leaderboard', runId, 5000);
        for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', runId, 5));
      };
      const liveTable = async () => (await scratch.pool.query<{ oid: number }>(`SELECT 'player_scores'::regclass::oid AS oid`)).rows[0]!.oid;
      await fill('run-cancelled');
      const before = await liveTable();
      expect(await settleCancelledSwap(scratch.pool, 'leaderboard', 'run-cancelled', 5000)).toBeUndefined();
      expect((await scratch.pool.query('SELECT phase FROM reprocess_jobs')).rows).toEqual([{ phase: 'cancelled' }]);
      // An attempt the cancellation never reached (its worker cut off from Temporal) comes to the swap.
      await expect(catchUpShadow(scratch.pool, 'leaderboard', 'run-cancelled', 5000, 1000)).rejects.toThrow(ReprocessCancelledError);
      await expect(swapShadow(scratch.pool, 'leaderboard', 'run-cancelled', 5000)).rejects.toThrow(/the job was cancelled before its swap; the live tables are untouched/);
      expect(await liveTable()).toBe(before);

      // A job whose swap committed before the cancellation was settled reports it.
      await fill('run-swapped');
      const swapped = await swapShadow(scratch.pool, 'leaderboard', 'run-swapped', 5000);
      expect(await settleCancelledSwap(scratch.pool, 'leaderboard', 'run-swapped', 5000)).toEqual(swapped);
      expect((await scratch.pool.query('SELECT phase FROM reprocess_jobs')).rows).toEqual([{ phase: 'swapped' }]);
    } finally {
      await scratch.dispose();
    }
  });
});

describe('a swap Postgres refuses (an operator\'s view on a live table)', () => {
  it('fails for good, naming the view, before the fence; also when the view appears while the swap waits for the fence', async () => {
    const scratch = await createTestDatabase();
    const operator = new pg.Client({ connectionString: scratch.url });
    const hotPath = new pg.Client({ connectionString: scratch.url, application_name: 'hot-path-stand-in' });
    await operator.connect();
    await hotPath.connect();
    try {
      const { events } = inOrderTraffic(300, 3);
      await storeEventsInOrder(scratch.pool, events);
      await operator.query('CREATE VIEW top_players AS SELECT hunt_id, player_id, score FROM player_scores WHERE score > 1000');
      const blocked = /reprocess leaderboard: the swap cannot replace the live tables: view top_players depends on table player_scores\. .*Drop those objects/;
      await expect(prepareShadow(scratch.pool, 'leaderboard', 'run-v', 5000)).rejects.toThrow(blocked);

      await operator.query('DROP VIEW top_players');
      await prepareShadow(scratch.pool, 'leaderboard', 'run-v', 5000);
      for (let done = false; !done; ) ({ done } = await fillShadowChunk(scratch.pool, 'leaderboard', 'run-v', 5));
      await catchUpShadow(scratch.pool, 'leaderboard', 'run-v', 5000, 1000);
      await operator.query('CREATE VIEW top_players AS SELECT hunt_id, player_id, score FROM player_scores WHERE score > 1000');
      // A hot-path transaction in flight: a swap that took the fence would wait for it and fail as busy.
      await hotPath.query('BEGIN');
      await hotPath.query('LOCK TABLE hunts IN ROW EXCLUSIVE MODE');
      const swap = swapShadow(scratch.pool, 'leaderboard', 'run-v', 300);
      await expect(swap).rejects.toThrow(ReprocessBlockedError);
      await expect(swap).rejects.toThrow(blocked);

      // The view appears after the check, while the swap queues for the fence: DROP TABLE refuses (2BP01) under it.
      await operator.query('DROP VIEW top_players');
      const racing = swapShadow(scratch.pool, 'leaderboard', 'run-v', 30_000).then(() => 'swapped', (err: unknown) => err);
      await waitFor('the swap queued for the fence', async () => {
        const { rows } = await operator.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE hunts%'`,
      );
        return rows.length > 0;
      });
      await operator.query('CREATE VIEW top_players AS SELECT hunt_id, player_id, score FROM player_scores WHERE score > 1000');
      await hotPath.query('ROLLBACK');
      const failure = await racing;
      expect(failure).toBeInstanceOf(ReprocessBlockedError);
      expect((failure as Error).message).toMatch(/the swap cannot replace the live tables: view top_players depends on table player_scores/);
      expect(await count(scratch.pool, `pg_tables WHERE tablename = 'player_scores_shadow'`)).toBe(1); // rolled back: live tables untouched
    } finally {
      await hotPath.end();
      await operator.end();
      await scratch.dispose();
    }
  });
});

/**
 * A scratch database with events, and a session named `application` holding `hunts` in
 * `mode` in a transaction left open; `run` gets both and its pid, and may end the transaction.
 */
async function withHuntsHeld(application: string, mode: string, run: (scratch: TestDatabase, holder: pg.Client, pid: number) => Promise<void>): Promise<void> {
  const scratch = await createTestDatabase();
  const holder = new pg.Client({ connectionString: scratch.url, application_name: application });
  await holder.connect();
  try {
    await storeEventsInOrder(scratch.pool, inOrderTraffic(100, 2).events);
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE hunts IN ${mode} MODE`);
    const { rows } = await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await run(scratch, holder, rows[0]!.pid);
  } finally {
    await holder.end();
    await scratch.dispose();
  }
}

/** The hot path's lock on hunts, as a commit takes it: resolves if granted within `timeoutMs`, rejects (55P03) if not. */
async function hotPathLocksHunts(pool: pg.Pool, timeoutMs: number): Promise<void> {
  const hotPath = await pool.connect();
  try {
    await hotPath.query('BEGIN');
    await hotPath.query(`SET LOCAL lock_timeout = '${timeoutMs}ms'`);
    await hotPath.query('LOCK TABLE hunts IN ROW EXCLUSIVE MODE');
  } finally {
    await hotPath.query('ROLLBACK').catch(() => undefined);
    hotPath.release();
  }
}

/** Resolves once a session waits for SHARE UPDATE EXCLUSIVE on `table`: the step has asked for it, behind the holder. */
async function maintenanceLockAwaited(pool: pg.Pool, table: string): Promise<void> {
  await waitFor(
    `a request for SHARE UPDATE EXCLUSIVE on ${table}`,
    async () => {
      const { rows } = await pool.query(
        `SELECT 1 FROM pg_locks WHERE locktype = 'relation' AND relation = $1::regclass AND mode = 'ShareUpdateExclusiveLock' AND NOT granted`,
        [table],
      );
      return rows.length > 0;
    },
    { timeoutMs: 5000, intervalMs: 20 },
  );
}

describe('the fence', () => {
  it('names the session that holds it when it is not free in time, and goes through once that session ends', async () => {
    // A session left idle in a transaction that wrote to hunts: the fence waits for it.
    await withHuntsHeld('stuck-session', 'ROW EXCLUSIVE', async (scratch, holder, pid) => {
      const failure = prepareShadow(scratch.pool, 'leaderboard', 'run-fence', 200);
      await expect(failure).rejects.toBeInstanceOf(FenceBusyError);
      await expect(failure).rejects.toThrow(
        new RegExp(`not free within 200 ms; held by pid ${pid} \\(application "stuck-session", user "[^"]*", idle in transaction, transaction open \\d+ s\\)`),
      );
      await holder.query('ROLLBACK');
      expect(await prepareShadow(scratch.pool, 'leaderboard', 'run-fence', 200)).toMatchObject({ startedSeq: expect.any(Number) });
    });
  });

  it('is not asked for while a session has held hunts for seconds (a reconcile), so the hot path never queues behind the request', async () => {
    // What a reconcile holds through its recompute, minutes for a big hunt.
    await withHuntsHeld('reconcile-like', 'ROW SHARE', async (scratch, holder, pid) => {
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const failure = prepareShadow(scratch.pool, 'leaderboard', 'run-long-holder', 5000);
      failure.catch(() => undefined);
      // Meanwhile the hot path's commit on another hunt: before, it queued behind the fence's
      // request for the whole lock_timeout (5 s) and failed here.
      await hotPathLocksHunts(scratch.pool, 1000);
      await expect(failure).rejects.toBeInstanceOf(FenceBusyError);
      await expect(failure).rejects.toThrow(new RegExp(`was not asked for: sessions have held hunts for over 2 s.*pid ${pid} \\(application "reconcile-like"`));
      await holder.query('ROLLBACK');
      expect(await prepareShadow(scratch.pool, 'leaderboard', 'run-long-holder', 5000)).toMatchObject({ startedSeq: expect.any(Number) });
    });
  });
  it('waits out an ANALYZE or VACUUM of hunts before asking for the fence, so the hot path goes on meanwhile, and names it if it does not end', async () => {
    // The lock a VACUUM or ANALYZE of hunts holds, here for over 2 s already. Autovacuum's
    // gives way to a waiting lock only after deadlock_timeout (1 s); queued for the fence
    // meanwhile, the hot path waited too.
    await withHuntsHeld('manual-analyze', 'SHARE UPDATE EXCLUSIVE', async (scratch, holder, pid) => {
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const failure = prepareShadow(scratch.pool, 'leaderboard', 'run-analyze', 1000);
      failure.catch(() => undefined);
      await maintenanceLockAwaited(scratch.pool, 'hunts');
      await hotPathLocksHunts(scratch.pool, 100);
      await expect(failure).rejects.toBeInstanceOf(MaintenanceBusyError);
      await expect(failure).rejects.toThrow(new RegExp(`on hunts did not give way within 1000 ms: pid ${pid} \\(application "manual-analyze"`));
      await holder.query('ROLLBACK');
      expect(await prepareShadow(scratch.pool, 'leaderboard', 'run-analyze', 1000)).toMatchObject({ startedSeq: expect.any(Number) });
    });
  });

  it('checks for long holders of hunts after waiting out a VACUUM, so one that began meanwhile (a reconcile) is not queued behind', async () => {
    await withHuntsHeld('manual-vacuum', 'SHARE UPDATE EXCLUSIVE', async (scratch, holder) => {
      const reconcile = new pg.Client({ connectionString: scratch.url, application_name: 'reconcile-like' });
      await reconcile.connect();
      try {
        const prepare = prepareShadow(scratch.pool, 'leaderboard', 'run-order', 5000);
        prepare.catch(() => undefined);
        await maintenanceLockAwaited(scratch.pool, 'hunts');
        // While the step waits, a reconcile takes hunts and holds it through its recompute.
        await reconcile.query('BEGIN');
        await reconcile.query('LOCK TABLE hunts IN ROW SHARE MODE');
        await new Promise((resolve) => setTimeout(resolve, 2100));
        await holder.query('ROLLBACK');
        await expect(prepare).rejects.toThrow(/was not asked for: sessions have held hunts for over 2 s.*application "reconcile-like"/);
        // Not queued behind it: the hot path goes on.
        await hotPathLocksHunts(scratch.pool, 100);
      } finally {
        await reconcile.end();
      }
    });
  });
});

describe('the swap', () => {
  it('does not fence the hot path while a long reader holds a live table, names it, and goes through once it ends', async () => {
    const scratch = await createTestDatabase();
    const reader = new pg.Client({ connectionString: scratch.url, application_name: 'long-reader' });
    await reader.connect();
    try {
      await storeEventsInOrder(scratch.pool, inOrderTraffic(100, 3).events);
      await prepareShadow(scratch.pool, 'leaderboard', 'run-reader', 200);
      while (!(await fillShadowChunk(scratch.pool, 'leaderboard', 'run-reader', 1000)).done);
      // A dump or an analyst's transaction reading the leaderboard, open for a while.
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await reader.query('SELECT count(*) FROM player_scores');
      const { rows } = await reader.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const failure = swapShadow(scratch.pool, 'leaderboard', 'run-reader', 200);
      await expect(failure).rejects.toBeInstanceOf(LiveTablesBusyError);
      await expect(failure).rejects.toThrow(new RegExp(`waits for sessions using the live tables .*pid ${rows[0]!.pid} \\(application "long-reader"`));
      // The fence was not taken: the hot path's lock on hunts goes through at once.
      await hotPathLocksHunts(scratch.pool, 100);
      await reader.query('COMMIT');
      expect(await swapShadow(scratch.pool, 'leaderboard', 'run-reader', 200)).toMatchObject({ maxSeq: expect.any(Number) });
    } finally {
      await reader.end();
      await scratch.dispose();
    }
  });

  it('waits out a VACUUM or ANALYZE of a live or shadow table before the fence, so the hot path goes on meanwhile, and names it if it does not end', async () => {
    const scratch = await createTestDatabase();
    const maintenance = new pg.Client({ connectionString: scratch.url, application_name: 'manual-vacuum' });
    await maintenance.connect();
    /** The lock a VACUUM or ANALYZE of `table` holds; autovacuum's gives way to the swap only after deadlock_timeout (1 s). */
    const hold = async (table: string) => {
      await maintenance.query('BEGIN');
      await maintenance.query(`LOCK TABLE ${table} IN SHARE UPDATE EXCLUSIVE MODE`);
    };
    try {
      await storeEventsInOrder(scratch.pool, inOrderTraffic(100, 3).events);
      await prepareShadow(scratch.pool, 'leaderboard', 'run-vacuum', 200);
      while (!(await fillShadowChunk(scratch.pool, 'leaderboard', 'run-vacuum', 1000)).done);
      const { rows } = await maintenance.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');

      // On a live table, and it does not end in time: the swap fails, naming it. Before, the
      // swap waited for it holding the fence, and the hot path's lock on hunts timed out here.
      await hold('clue_credits');
      const failure = swapShadow(scratch.pool, 'leaderboard', 'run-vacuum', 1000);
      failure.catch(() => undefined);
      await maintenanceLockAwaited(scratch.pool, 'clue_credits');
      await hotPathLocksHunts(scratch.pool, 100);
      await expect(failure).rejects.toBeInstanceOf(MaintenanceBusyError);
      await expect(failure).rejects.toThrow(new RegExp(`clue_credits, treasure_winners, .* did not give way within 1000 ms: pid ${rows[0]!.pid} \\(application "manual-vacuum"`));
      await maintenance.query('ROLLBACK');

      // On a shadow, which the swap renames under the fence, and it ends while the swap
      // waits: the swap goes through after it.
      await hold('clue_credits_shadow');
      const swap = swapShadow(scratch.pool, 'leaderboard', 'run-vacuum', 5000);
      await maintenanceLockAwaited(scratch.pool, 'clue_credits_shadow');
      await hotPathLocksHunts(scratch.pool, 100);
      await maintenance.query('ROLLBACK');
      expect(await swap).toMatchObject({ maxSeq: expect.any(Number) });
    } finally {
      await maintenance.end();
      await scratch.dispose();
    }
  });
});

describe('what the swap must not lose', () => {
  /** A scratch database with events, and a run of reprocess filled up to the swap. */
  async function filled(runId: string, before: (pool: pg.Pool) => Promise<unknown> = async () => undefined): Promise<TestDatabase> {
    const scratch = await createTestDatabase();
    await storeEventsInOrder(scratch.pool, inOrderTraffic(60, 4).events);
    await before(scratch.pool);
    await prepareShadow(scratch.pool, 'leaderboard', runId, 200);
    while (!(await fillShadowChunk(scratch.pool, 'leaderboard', runId, 1000)).done);
    return scratch;
  }

  it('keeps the privileges, storage options and replica identity of the live tables, and a check added NOT VALID', async () => {
    // A check added NOT VALID (the usual way on a big table) is copied as valid: the same shape.
    const scratch = await filled('run-access', (pool) => pool.query('ALTER TABLE player_scores ADD CONSTRAINT score_sane CHECK (score > -1000000000) NOT VALID'));
    try {
      await scratch.pool.query('GRANT SELECT ON player_scores TO PUBLIC');
      await scratch.pool.query('ALTER TABLE player_scores SET (fillfactor = 70)');
      await scratch.pool.query('ALTER TABLE player_scores REPLICA IDENTITY FULL');
      await swapShadow(scratch.pool, 'leaderboard', 'run-access', 200);
      const { rows } = await scratch.pool.query<{ acl: string; options: string[]; identity: string }>(
        `SELECT relacl::text AS acl, reloptions AS options, relreplident AS identity FROM pg_class WHERE oid = 'player_scores'::regclass`,
      );
      expect(rows[0]?.acl).toMatch(/(^|[{,])=r\//);
      expect(rows[0]?.options).toEqual(['fillfactor=70']);
      expect(rows[0]?.identity).toBe('f');
    } finally {
      await scratch.dispose();
    }
  });

  it('fails for good, naming it, when a live table changed since the run copied it, and leaves the change in place', async () => {
    const scratch = await filled('run-shape');
    try {
      await scratch.pool.query('ALTER TABLE player_scores ADD COLUMN team_id text');
      const failure = swapShadow(scratch.pool, 'leaderboard', 'run-shape', 200);
      await expect(failure).rejects.toBeInstanceOf(ReprocessStateError);
      await expect(failure).rejects.toThrow(/player_scores: column team_id text \(added\).*Start reprocess again/);
      const { rows } = await scratch.pool.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'player_scores' AND column_name = 'team_id'`);
      expect(rows).toHaveLength(1);
    } finally {
      await scratch.dispose();
    }
  });

  it('refuses to start, naming it, while a live table has a trigger the swap would drop', async () => {
    const scratch = await createTestDatabase();
    try {
      await scratch.pool.query(`CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`);
      await scratch.pool.query('CREATE TRIGGER audit_scores AFTER UPDATE ON player_scores FOR EACH ROW EXECUTE FUNCTION audit()');
      const failure = prepareShadow(scratch.pool, 'leaderboard', 'run-trigger', 200);
      await expect(failure).rejects.toBeInstanceOf(ReprocessBlockedError);
      await expect(failure).rejects.toThrow(/the swap would lose what the live tables carry: trigger audit_scores on table player_scores/);
      await scratch.pool.query('DROP TRIGGER audit_scores ON player_scores');
      await scratch.pool.query('GRANT SELECT (hunt_id, score) ON player_scores TO PUBLIC');
      await expect(prepareShadow(scratch.pool, 'leaderboard', 'run-trigger', 200)).rejects.toThrow(/privileges on columns of table player_scores/);
      await scratch.pool.query('REVOKE SELECT (hunt_id, score) ON player_scores FROM PUBLIC');
      // A foreign key from a live table to another: LIKE does not copy it, and the drop takes it.
      await scratch.pool.query('ALTER TABLE player_scores ADD CONSTRAINT scores_of_hunts FOREIGN KEY (hunt_id) REFERENCES hunts');
      await expect(prepareShadow(scratch.pool, 'leaderboard', 'run-trigger', 200)).rejects.toThrow(/foreign key scores_of_hunts of table player_scores/);
    } finally {
      await scratch.dispose();
    }
  });
});

describe('reprocess workflow', () => {
  it('rebuilds corrupted projections and swaps them in while the hot path ingests, exactly', { timeout: 300_000 }, async () => {
    const live = await createTestDatabase();
    const topics = await createTestTopics(4);
    const traffic = inOrderTraffic(80_000, 21); // more than needed: traffic runs until the job is done
    const ingest = startIngestProcess(live.url, topics);
    try {
      await ingest.ready();
      const { result, progress, kind, sent } = await withWorker(live.pool, async (taskQueue) => {
        let jobDone = false;
        // Traffic before, during and after the job, whatever the machine's speed: it stops
        // 3000 records after the swap, so the hot path must go on ingesting across it.
        const sending = sendUntil(topics.events, traffic.records, 2500, () => jobDone, 3000);
        await waitFor('5000 events stored', async () => (await count(live.pool, 'events')) >= 5000, { timeoutMs: 60_000 });

        // Corrupt the live projections and stats: only a rebuild from the raw events repairs this.
        const corrupted = await live.pool.query(
          `UPDATE player_scores SET score = score + 1000
            WHERE (hunt_id, player_id) IN (SELECT hunt_id, player_id FROM player_scores ORDER BY hunt_id, player_id LIMIT 5)`,
        );
        expect(corrupted.rowCount).toBe(5);
        await live.pool.query('DELETE FROM treasure_winners WHERE (hunt_id, treasure_id) IN (SELECT hunt_id, treasure_id FROM treasure_winners LIMIT 3)');
        await live.pool.query('UPDATE hunts SET events_applied = events_applied + 7');

        const handle = await client.workflow.start('reprocess', {
          taskQueue,
          workflowId: uniqueName('reprocess'),
          args: [{ projection: 'leaderboard', huntsPerChunk: 2 }],
        });
        const result: ReprocessSummary = await handle.result().finally(() => (jobDone = true));
        const kind = (await handle.describe()).typedSearchAttributes.get(HUNT_JOB_KIND);
        return { result, progress: await handle.query(progressQuery), kind, sent: await sending };
      });
      logger.warn({ result, sent }, 'reprocess under traffic');
      expect(sent).toBeLessThan(traffic.records.length); // stopped by the job, not by running out
      expect(kind).toBe('reprocess');
      expect(progress).toEqual({ phase: 'done', huntsDone: 5, huntsTotal: 5, startedSeq: result.startedSeq });
      expect(result).toMatchObject({ projection: 'leaderboard', huntsTotal: 5 });
      // Events kept arriving during the job; the swap merged its share of them under the fence.
      expect(result.maxSeq).toBeGreaterThan(result.startedSeq);
      expect(result.eventsCaughtUp).toBeGreaterThan(0);
      expect(result.fencedEvents).toBeLessThanOrEqual(result.eventsCaughtUp);

      await waitCaughtUp(live.pool, topics, 120_000);
      const records = traffic.records.slice(0, sent);
      const events = records.flatMap((r) => (r.event ? [r.event] : []));
      const expected = foldEvents(events);
      expect(await projectionOf(live.pool)).toEqual(expected);
      const { rows } = await live.pool.query(
        `SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM quarantine) AS quarantined,
                (SELECT sum(events_applied)::int FROM hunts) AS applied, (SELECT count(*)::int FROM hunts) AS hunts,
                (SELECT count(*)::int FROM hunts h WHERE as_of IS DISTINCT FROM (SELECT max(occurred_at) FROM events e WHERE e.hunt_id = h.hunt_id)) AS stale,
                (SELECT count(*)::int FROM events WHERE seq > $1) AS after_swap`,
        [result.maxSeq],
      );
      const invalid = records.filter((r) => r.kind === 'invalid').length;
      expect(rows[0]).toMatchObject({ events: events.length, quarantined: invalid, applied: events.length, hunts: 5, stale: 0 });
      // The same hot-path process went on ingesting after the swap, with no failed commit.
      expect(rows[0].after_swap).toBeGreaterThan(0);
      expect(ingest.child.exitCode).toBeNull();
      expect(fs.readFileSync(ingest.logFile, 'utf8')).not.toContain('commit failed');
      const huntId = expected.players[0]?.huntId ?? '';
      const board = (await (await fetch(`${ingest.apiUrl}/hunts/${huntId}/leaderboard?limit=1000`)).json()) as { entries: unknown };
      expect(board.entries).toEqual(leaderboardOf(expected, huntId));

      // The schema reads as before: live names, original index names, no shadows left.
      const schema = await live.pool.query<{ indexname: string }>(
        `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename IN ('player_scores', 'clue_credits', 'treasure_winners') ORDER BY indexname`,
      );
      expect(schema.rows.map((r) => r.indexname)).toEqual(['clue_credits_pkey', 'player_scores_leaderboard', 'player_scores_pkey', 'treasure_winners_pkey']);
      expect(await count(live.pool, `pg_tables WHERE tablename LIKE '%shadow%'`)).toBe(0);

      // Idempotent: a second run on the quiet database rebuilds the same state.
      const again = await withWorker(live.pool, (taskQueue) =>
        client.workflow.execute('reprocess', { taskQueue, workflowId: uniqueName('reprocess'), args: [{ projection: 'leaderboard' }] }),
      );
      expect(again).toMatchObject({ eventsCaughtUp: 0, fencedEvents: 0, maxSeq: await maxSeq(live.pool) });
      expect(again.rows).toBe(expected.players.length + expected.clueCredits.length + expected.hintPenalties.length + expected.treasureWinners.length);
      expect(await projectionOf(live.pool)).toEqual(expected);
    } finally {
      await ingest.kill('SIGKILL');
      await live.dispose();
    }
  });

  it('fails on the first swap attempt, naming the view an operator made on a live table, without fencing the hot path for it', { timeout: 120_000 }, async () => {
    const scratch = await createTestDatabase();
    const hotPath = new pg.Client({ connectionString: scratch.url, application_name: 'hot-path-stand-in' });
    await hotPath.connect();
    try {
      await storeEventsInOrder(scratch.pool, inOrderTraffic(300, 3).events);
      const real = createReprocessActivities({ pool: scratch.pool, logger, config });
      const activities = {
        ...real,
        async catchUpShadow(input: CatchUpInput) {
          const summary = await real.catchUpShadow(input);
          // Then, before the swap: an operator adds a view, and a hot-path transaction is in
          // flight, so a swap step that took the fence would fail as busy and retry instead.
          await scratch.pool.query('CREATE VIEW top_players AS SELECT hunt_id, player_id, score FROM player_scores WHERE score > 1000');
          await hotPath.query('BEGIN');
          await hotPath.query('LOCK TABLE hunts IN ROW EXCLUSIVE MODE');
          return summary;
        },
      };
      const { outcome, swapAttempts } = await withWorker(scratch.pool, async (taskQueue) => {
        const handle = await client.workflow.start('reprocess', { taskQueue, workflowId: uniqueName('reprocess-blocked'), args: [{ projection: 'leaderboard' }] });
        const outcome = await Promise.race([
          handle.result().then(() => 'swapped', (err: unknown) => err),
          new Promise((resolve) => setTimeout(resolve, 60_000, 'still running (retrying) after 60 s')),
        ]);
        if (typeof outcome === 'string') await handle.terminate('test: the swap did not fail for good');
        const events = (await handle.fetchHistory()).events ?? [];
        const swapAttempts = events.filter((e) => e.activityTaskStartedEventAttributes && events.some(
          (s) => s.eventId?.toString() === e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() && s.activityTaskScheduledEventAttributes?.activityType?.name === 'swapShadow',
        )).map((e) => e.activityTaskStartedEventAttributes?.attempt);
        return { outcome, swapAttempts };
      }, activities);
      expect(outcome).toBeInstanceOf(WorkflowFailedError);
      const activityFailure = (outcome as WorkflowFailedError).cause;
      expect(activityFailure).toBeInstanceOf(ActivityFailure);
      expect((activityFailure as ActivityFailure).activityType).toBe('swapShadow');
      const cause = (activityFailure as ActivityFailure).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect(cause).toMatchObject({ type: 'ReprocessBlocked', nonRetryable: true });
      expect(cause?.message).toMatch(/the swap cannot replace the live tables: view top_players depends on table player_scores\. .*Drop those objects/);
      expect(swapAttempts).toEqual([1]);
      expect(await count(scratch.pool, `pg_tables WHERE tablename = 'player_scores_shadow'`)).toBe(1); // live tables untouched
    } finally {
      await hotPath.end();
      await scratch.dispose();
    }
  });

  it('fails on the first fill attempt, naming the constraint, when Postgres refuses what the rules compute (every retry would, and the hunts after it would wait)', { timeout: 120_000 }, async () => {
    const scratch = await createTestDatabase();
    try {
      await storeEventsInOrder(scratch.pool, inOrderTraffic(300, 3).events);
      // An operator's constraint on a live table that the rules' results break (NOT VALID: the rows there now are not checked).
      await scratch.pool.query('ALTER TABLE player_scores ADD CONSTRAINT score_below_three CHECK (score < 3) NOT VALID');
      const { outcome, fillAttempts } = await withWorker(scratch.pool, async (taskQueue) => {
        const handle = await client.workflow.start('reprocess', { taskQueue, workflowId: uniqueName('reprocess-refused'), args: [{ projection: 'leaderboard' }] });
        const outcome = await Promise.race([
          handle.result().then(() => 'swapped', (err: unknown) => err),
          new Promise((resolve) => setTimeout(resolve, 60_000, 'still running (retrying) after 60 s')),
        ]);
        if (typeof outcome === 'string') await handle.terminate('test: the fill did not fail for good');
        const events = (await handle.fetchHistory()).events ?? [];
        const fillAttempts = events.filter((e) => e.activityTaskStartedEventAttributes && events.some(
          (s) => s.eventId?.toString() === e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() && s.activityTaskScheduledEventAttributes?.activityType?.name === 'fillShadow',
        )).map((e) => e.activityTaskStartedEventAttributes?.attempt);
        return { outcome, fillAttempts };
      });
      expect(outcome).toBeInstanceOf(WorkflowFailedError);
      const activityFailure = (outcome as WorkflowFailedError).cause as ActivityFailure;
      expect(activityFailure.activityType).toBe('fillShadow');
      expect(activityFailure.cause).toMatchObject({ type: 'ReprocessBlocked', nonRetryable: true });
      expect(activityFailure.cause?.message).toMatch(/Postgres refused the recomputation of a chunk of hunts: .*score_below_three.*fix or drop it, then start reprocess again/);
      expect(fillAttempts).toEqual([1]);
    } finally {
      await scratch.dispose();
    }
  });

  it('reported cancelled swaps nothing: a cancellation heard while the swap step waits stops it before the swap', { timeout: 120_000 }, async () => {
    const scratch = await createTestDatabase();
    const holder = await scratch.pool.connect();
    try {
      await storeEventsInOrder(scratch.pool, inOrderTraffic(300, 3).events);
      const real = createReprocessActivities({ pool: scratch.pool, logger, config });
      let heard!: () => void;
      const stepHeardTheCancel = new Promise<void>((resolve) => (heard = resolve));
      const activities = {
        ...real,
        async catchUpShadow(input: CatchUpInput) {
          const summary = await real.catchUpShadow(input);
          // Then the job's row is held (as a slow catch-up round or a fence wait would hold
          // the swap step): the swap step's last round waits for it.
          await holder.query('BEGIN');
          await holder.query('SELECT 1 FROM reprocess_jobs FOR UPDATE');
          return summary;
        },
        async swapShadow(input: Parameters<typeof real.swapShadow>[0]) {
          Context.current().cancellationSignal.addEventListener('abort', () => heard());
          return real.swapShadow(input);
        },
      };
      const outcome = await withWorker(scratch.pool, async (taskQueue) => {
        const handle = await client.workflow.start('reprocess', { taskQueue, workflowId: uniqueName('reprocess-cancel-swap'), args: [{ projection: 'leaderboard' }] });
        await waitFor('the swap step', async () => (await handle.query(progressQuery)).phase === 'swapping', { timeoutMs: 60_000 });
        await handle.cancel();
        await stepHeardTheCancel;
        await holder.query('COMMIT');
        return handle.result().then(() => 'completed', (err: unknown) => err);
      }, activities);
      // Before, the job said cancelled at once, and the step went on to swap when the row was free.
      expect(outcome).toBeInstanceOf(WorkflowFailedError);
      expect((outcome as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect(await count(scratch.pool, `pg_tables WHERE tablename = 'player_scores_shadow'`)).toBe(1); // live tables untouched
      expect(await count(scratch.pool, `reprocess_jobs WHERE phase = 'swapped'`)).toBe(0);
    } finally {
      holder.release();
      await scratch.dispose();
    }
  });

  it('fails at once, non-retryably, with a message that says what to fix', async () => {
    for (const [input, message] of [
      [{ projection: 'scores' }, 'reprocess: invalid input: projection must be one of "leaderboard", got "scores"'],
      [{}, 'projection must be one of "leaderboard", got undefined'],
      [{ projection: 'leaderboard', limit: 5 }, 'unknown field(s) limit; allowed: projection, huntsPerChunk'],
      [{ projection: 'leaderboard', huntsPerChunk: 0 }, 'huntsPerChunk must be a whole number from 1 to 10000, got 0'],
    ] as const) {
      const failure = await withWorker(db.pool, (taskQueue) =>
        client.workflow.execute('reprocess', { taskQueue, workflowId: uniqueName('reprocess-bad'), args: [input] }).then(
          () => undefined,
          (err: unknown) => err,
        ),
      );
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      const cause = (failure as WorkflowFailedError).cause;
      expect(cause?.message).toContain(message);
      expect(cause).toMatchObject({ type: 'InvalidJobInput', nonRetryable: true });
    }
  });
});

async function count(pool: pg.Pool, from: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${from}`);
  return rows[0]?.n ?? 0;
}

async function maxSeq(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ seq: number }>('SELECT max(seq) AS seq FROM events');
  return rows[0]?.seq ?? 0;
}

/**
 * Sends records at about `rate` per second until `stop()` turns true, then `tail` more (so
 * some surely arrive after what `stop` waits for); returns how many were sent, in order.
 */
async function sendUntil(topic: string, records: TrafficRecord[], rate: number, stop: () => boolean, tail: number): Promise<number> {
  const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const started = Date.now();
  let sent = 0;
  let limit = records.length;
  try {
    while (sent < limit) {
      if (limit === records.length && stop()) limit = Math.min(records.length, sent + tail);
      const due = Math.min(limit, Math.ceil(((Date.now() - started + 20) / 1000) * rate));
      if (due > sent) {
        await producer.send({ topic, messages: records.slice(sent, due).map((r) => ({ key: r.key, value: r.value })) });
        sent = due;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await producer.disconnect();
  }
  return sent;
}
