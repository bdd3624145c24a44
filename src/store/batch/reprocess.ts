/**
 * Reprocess: rebuild a projection from the raw event store into shadow tables while the hot
 * path keeps ingesting, then swap them in atomically; no event lost or counted twice.
 *
 * 1. prepare: (re)create the shadows, without indexes; then, holding the fence for an instant, note
 *    S = max(seq). Every writer of events (applyEvents) locks `hunts` before inserting, so
 *    under the fence no transaction holding a seq <= S is in flight: all of them are
 *    committed and visible to the fill. (seq is taken at insert but visible at commit;
 *    without the fence a lower seq could still appear later and be missed.)
 * 2. fill: recompute hunt after hunt (byte order) from events with seq <= S, outside the
 *    fence; each chunk commits with its cursor in reprocess_jobs. Once every hunt is in,
 *    build the live tables' indexes on the shadows (one sorted build each, about half the
 *    cost of keeping them up row by row: experiments §69) and analyze them.
 * 3. catch up, outside the fence: merge events stored since (mergeInto), in rounds, each
 *    bounded by a max(seq) read under an instantaneous fence, until a round is small.
 * 4. swap, in one transaction under the fence: merge the last few events, set the hunts'
 *    stats in place, drop the live tables and rename the shadows (and their indexes).
 *
 * The fence is `LOCK TABLE hunts IN EXCLUSIVE MODE`: it waits for the hot path's in-flight
 * transactions (their `INSERT .. ON CONFLICT` on hunts holds ROW EXCLUSIVE) and holds back
 * new ones, and, unlike SHARE ROW EXCLUSIVE, also repairs that lock hunt rows with
 * `SELECT .. FOR UPDATE`. Plain reads (the read API) go on. The hot path's named prepared
 * statements survive the swap: dropping a table invalidates the plans that used it, and
 * Postgres re-analyzes them from their text on next use, resolving the names anew. The locks
 * a step takes around the fence, and in what order, are in fence-locks.ts; how the fill cuts
 * its chunks, in ../hunt-groups.ts.
 *
 * Idempotent: reprocess_jobs names the run that owns the shadows, and every step's progress
 * commits with its work. A retried step continues, a prepare that finds its job past it (a
 * stalled attempt) and a finished swap report what is recorded, and a newer run takes over
 * (the older one's next step fails as superseded).
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import { ALL_HUNTS, notifyHuntsChanged } from '../hunt-changes';
import { SqlState, sqlStateOf } from '../sql-state';
import { deleteProjectionRows, LIVE_PROJECTION_TABLES, mergeInto, recomputeInto, type ProjectionTargets } from './recompute';
import { attachmentsTheSwapWouldLose, shapeChanges } from './live-table-shape';
import { buildShadowIndexes, objectsBlockingDrop, recreateShadow, swapInShadow } from './shadow-tables';
import { withTransaction } from '../transaction';
import { settleAll } from '../../settle-all';
import { allowIdleInTransaction, withBoundedTransaction } from '../bounded-transaction';
import { newestEventSeq } from './settled-seq';
import { assertNoLongHolders, keepMaintenanceOff, lockForDrop, takeFence, type LiveTables } from './fence-locks';
import { firstGroup, splitIntoLanes, type SizedHunt } from '../hunt-groups';

/** Projections reprocess can rebuild, by the name operators pass in the job input. */
export const PROJECTIONS = {
  /** The leaderboard: player scores with the clue credits and treasure winners behind them. */
  leaderboard: LIVE_PROJECTION_TABLES,
} as const;
export type ProjectionName = keyof typeof PROJECTIONS;

export function isProjectionName(name: string): name is ProjectionName {
  return Object.hasOwn(PROJECTIONS, name);
}

/** The run no longer owns the shadow tables: another run of the same projection took over. */
export class ReprocessSupersededError extends Error {}
/** A step called in a phase it cannot run in: a workflow bug, not a transient fault. */
export class ReprocessStateError extends Error {}
/** The swap cannot drop a live table: other objects depend on it. Every retry would fail the same way. */
export class ReprocessBlockedError extends Error {}
/** The swap was given up, rolled back, because its job was cancelled meanwhile. */
export class ReprocessCancelledError extends Error {}

const SHADOW_SUFFIX = '_shadow';
// The hunts table is the fence and is never swapped: its stats are updated in place.
const HUNT_STATS_SHADOW = 'hunt_stats_shadow';

function shadowTargets(projection: ProjectionName): Required<ProjectionTargets> {
  const { players, clueCredits, treasureWinners } = PROJECTIONS[projection];
  const shadow = (live: string) => live + SHADOW_SUFFIX;
  return { players: shadow(players), clueCredits: shadow(clueCredits), treasureWinners: shadow(treasureWinners), huntStats: HUNT_STATS_SHADOW };
}

function liveTablesOf(projection: ProjectionName): LiveTables {
  return { projection, tables: Object.values(PROJECTIONS[projection]) };
}

function liveAndShadowTables(projection: ProjectionName): [live: string, shadow: string][] {
  return Object.values(PROJECTIONS[projection]).map((live) => [live, live + SHADOW_SUFFIX]);
}

/**
 * A job row's mark: its updated_at in microseconds since 1970, as text (whatever the session's
 * time zone), which the attempt that last reset the job (resetJob) holds.
 */
const markOf = (row: string) => `(extract(epoch FROM ${row}.updated_at) * 1000000)::bigint::text`;

interface JobRow {
  job_id: string;
  phase: 'preparing' | 'filling' | 'filled' | 'swapped' | 'cancelled';
  started_seq: number | null;
  covered_seq: number | null;
  fill_cursor: string | null;
  hunts_total: number;
  hunts_done: number;
  shadow_rows: number;
  events_caught_up: number;
  fenced_events: number | null;
  fence_ms: number | null;
  max_seq: number | null;
  fill_mark: string | null;
}

export type PrepareResult = { startedSeq: number; huntsTotal: number };
export type FillProgress = { huntsDone: number; huntsTotal: number; done: boolean };

export interface CatchUpResult {
  /** Events merged into the shadows by this round. */
  events: number;
  coveredSeq: number;
  /** The round reached the newest event stored when it started. */
  complete: boolean;
}

export interface SwapResult {
  /** Projection rows swapped in. */
  rows: number;
  startedSeq: number;
  /** Events merged after the fill, in catch-up rounds and under the fence. */
  eventsCaughtUp: number;
  /** Events merged under the fence, and how long the swap held it. */
  fencedEvents: number;
  fenceMs: number;
  /** The newest seq the swapped-in tables cover; the hot path applies the rest. */
  maxSeq: number;
}

/**
 * Takes over the job record, (re)creates empty shadows, and notes the fill's seq bound.
 * `jobStartedAt` orders runs: the record goes to the run started last, so a retried prepare
 * of an older run (its worker died, the retry came late) fails as superseded instead of
 * taking the shadows back from a newer run. Fails first if the swap could never succeed.
 * A job already past its prepare is left as it is, and its record answers (takeOverJob).
 */
export async function prepareShadow(pool: pg.Pool, projection: ProjectionName, jobId: string, lockTimeoutMs: number, jobStartedAt = new Date()): Promise<PrepareResult> {
  const taken = await takeOverJob(pool, projection, jobId, jobStartedAt);
  if ('prepared' in taken) return taken.prepared;
  return startFill(pool, projection, jobId, lockTimeoutMs, taken.mark, await countHunts(pool));
}

/**
 * prepareShadow's first transaction, for a job not past its prepare (takeOverJob); one that
 * is fails as superseded, unchanged. Returns this attempt's mark, which startFill checks.
 */
export async function resetJob(pool: pg.Pool, projection: ProjectionName, jobId: string, jobStartedAt: Date): Promise<string> {
  const taken = await takeOverJob(pool, projection, jobId, jobStartedAt);
  if ('mark' in taken) return taken.mark;
  throw new ReprocessSupersededError(`reprocess ${projection}: run ${jobId}'s prepare leaves the job as it is: an attempt of it prepared the job already`);
}

/**
 * prepareShadow's first transaction: the job record reset to 'preparing', the shadows made
 * empty; then `mark`, this attempt's (the record's updated_at in microseconds, as text). But
 * the workflow prepares a job once, so a prepare that finds its own job past 'preparing' is
 * either a stalled attempt (its retry prepared, the fill went on) or the retry of one whose
 * startFill committed unreported: reset, the job would go back to 'preparing' under its fill
 * (which then failed, or started over), or, swapped, be swapped again. Such a job is left as
 * it is and `prepared` says what its record does; a cancelled one fails as startFill fails it.
 */
async function takeOverJob(pool: pg.Pool, projection: ProjectionName, jobId: string, jobStartedAt: Date): Promise<{ mark: string } | { prepared: PrepareResult }> {
  return withTransaction(pool, async (client) => {
    await boundStatements(client, FENCED_STEP_STATEMENT_MS);
    const { rows } = await client.query<{ mark: string }>(
      `INSERT INTO reprocess_jobs AS j (projection, job_id, phase, started_at, fill_mark) VALUES ($1, $2, 'preparing', $3, NULL)
       ON CONFLICT (projection) DO UPDATE SET job_id = excluded.job_id, phase = 'preparing', started_seq = NULL,
         covered_seq = NULL, fill_cursor = NULL, fill_mark = NULL, hunts_total = 0, hunts_done = 0, shadow_rows = 0, events_caught_up = 0,
         fenced_events = NULL, fence_ms = NULL, max_seq = NULL, started_at = excluded.started_at, updated_at = clock_timestamp(), finished_at = NULL
       WHERE CASE WHEN j.job_id = excluded.job_id THEN j.phase = 'preparing' ELSE j.started_at <= excluded.started_at END
       RETURNING ${markOf('j')} AS mark`,
      [projection, jobId, jobStartedAt],
    );
    if (rows.length === 0) {
      const job = await claimJob(client, projection, jobId); // owned by a run started later: superseded
      if (job.phase === 'cancelled') throw new ReprocessSupersededError(`reprocess ${projection}: run ${jobId}'s prepare stops: the job was cancelled meanwhile`);
      return { prepared: { startedSeq: job.started_seq ?? 0, huntsTotal: job.hunts_total } };
    }
    // Here, not before the record: a job past its prepare answers whatever was done to the
    // live tables since (a view put back after its swap).
    await assertLiveTablesReplaceable(client, projection);
    // A lane of an older run may still be writing: the new shadows must not get its rows.
    // Later ones find the job's mark gone (holdFillLane) and stop.
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [FILL_LANE_LOCK, projection]);
    // The projections' shadows get their indexes at the fill's end (finishShadows); the hunt
    // stats' (a row per hunt) keeps its key, which the fill's upsert of them needs.
    for (const [live, shadow] of liveAndShadowTables(projection)) await recreateShadow(client, live, shadow, 'later');
    await recreateShadow(client, 'hunts', HUNT_STATS_SHADOW);
    return { mark: rows[0]!.mark };
  });
}

/**
 * prepareShadow's second transaction: the fill's seq bound, read under the fence, and the
 * record to 'filling', if the record is still as this attempt's resetJob left it (`mark`).
 * An attempt that stalled between the two (a frozen worker, its retry done meanwhile and the
 * fill under way) moved the bound in the middle of the fill: the hunts filled before it
 * lacked the events stored between the two bounds, and the catch-up, merging from the new
 * one, never added them; the swap installed projections without them, unsaid.
 */
export async function startFill(pool: pg.Pool, projection: ProjectionName, jobId: string, lockTimeoutMs: number, mark: string, huntsTotal: number): Promise<PrepareResult> {
  return withTransaction(pool, async (client) => {
    await boundStatements(client, FENCED_STEP_STATEMENT_MS);
    const job = await claimJob(client, projection, jobId);
    if (job.phase !== 'preparing' || job.mark !== mark) {
      const why = job.phase === 'cancelled' ? 'the job was cancelled meanwhile' : `a later attempt prepared it again (the job is ${job.phase})`;
      throw new ReprocessSupersededError(`reprocess ${projection}: run ${jobId}'s prepare stops before its fill starts: ${why}`);
    }
    await takeFence(client, lockTimeoutMs);
    const startedSeq = await newestEventSeq(client);
    await client.query(
      `UPDATE reprocess_jobs SET phase = 'filling', started_seq = $2, covered_seq = $2, hunts_total = $3, updated_at = now() WHERE projection = $1`,
      [projection, startedSeq, huntsTotal],
    );
    return { startedSeq, huntsTotal };
  });
}

/**
 * About how many events a fill chunk recomputes, by the hunts' own counts (../hunt-groups.ts). On
 * the batch bench's store (1M events in 210 hunts, all running at once, 2 lanes) chunks of about
 * 250,000 events took the fill 4.3-4.7 s, of about 500,000 events 3.9-4.0 s (experiments §66).
 */
export const FILL_EVENTS_PER_CHUNK = 500_000;

/**
 * Fills the shadows for the next hunts after the cursor: at most `huntsPerChunk` of them, and
 * no more than FILL_EVENTS_PER_CHUNK events (at least one hunt). The cursor commits
 * with the first lane's rows, so a retry resumes where the last commit left off. With
 * `lanes` > 1 the chunk's hunts are split by their events and recomputed at once on that many connections,
 * so Postgres can use more than one core: the extra lanes commit their own transactions
 * first, and the cursor moves only after they did; an attempt ends only once every lane has.
 * The shadows have no indexes yet, so rows go in with plain INSERTs, and nothing would refuse
 * a hunt's rows written twice until the indexes are built. So each attempt marks the job
 * with a token of its own before any lane writes (openFillChunk) and clears it with the
 * cursor. An attempt that finds a mark there (an attempt failed, maybe after an extra lane
 * committed) first deletes every row past the cursor (its chunk may have been cut
 * otherwise: hunts' counts grow and new hunts come), reading the shadows whole, then fills
 * again. An attempt whose token was replaced before its claim (another attempt marked in
 * between) retries; so does an extra lane that finds it replaced (holdFillLane). A newer
 * run cannot take the shadows over meanwhile: it waits for the job row this transaction
 * holds. When no hunt is left it builds the shadows' indexes and analyzes them
 * (finishShadows).
 */
export async function fillShadowChunk(pool: pg.Pool, projection: ProjectionName, jobId: string, huntsPerChunk: number, lanes = 1, signal?: AbortSignal): Promise<FillProgress> {
  const mark = randomUUID();
  const wasOpen = await openFillChunk(pool, projection, jobId, mark);
  return withFillTransaction(pool, signal, async (client) => {
    // Behind another attempt's whole chunk, the claim would wait up to the statement limit,
    // which fillFailedForGood reports as a chunk too big: bounded as the mark's waits are.
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${OPEN_WAIT_MS}ms`]);
    const job = await claimJob(client, projection, jobId);
    await client.query('SET LOCAL lock_timeout TO DEFAULT');
    const progress = (done: boolean, extra = 0) => ({
      huntsDone: job.hunts_done + extra,
      huntsTotal: Math.max(job.hunts_total, job.hunts_done + extra),
      done,
    });
    if (job.phase === 'filled' || job.phase === 'swapped') return progress(true);
    if (job.phase !== 'filling' || job.started_seq === null) throw new ReprocessStateError(`reprocess ${projection}: cannot fill in phase ${job.phase}`);
    // Another attempt marked the job after this one (and may have failed with rows written, or
    // cleared it): what this one read at its mark is stale. Retried, it marks again.
    if (job.fill_mark !== mark) throw new Error(`reprocess ${projection}: another attempt of the fill marked the job between this one's mark and its claim; retrying`);

    const chunk = firstGroup(await sizedHuntsAfter(client, job.fill_cursor ?? '', huntsPerChunk), huntsPerChunk, FILL_EVENTS_PER_CHUNK);
    const huntIds = chunk.map((hunt) => hunt.huntId);
    if (huntIds.length === 0) {
      await finishShadows(pool, client, projection, lanes, signal);
      await client.query(`UPDATE reprocess_jobs SET phase = 'filled', fill_mark = NULL, updated_at = now() WHERE projection = $1`, [projection]);
      return progress(true);
    }
    const maxSeq = job.started_seq;
    const [first = [], ...others] = splitIntoLanes(chunk, lanes);
    // This transaction waits idle while the other lanes recompute (a lane's big hunt: minutes);
    // it holds the job row and shadow rows, nothing the hot path takes, so the pool's 20 s
    // idle-in-transaction bound would only fail the chunk, the same way on every retry.
    if (others.length > 0) await allowIdleInTransaction(client, FILL_LANE_WAIT_MS);
    const targets = shadowTargets(projection);
    // Rows a failed attempt left were never counted in shadow_rows: deleting them counts nothing.
    // Every row of a hunt past the cursor (byte order, as the fill goes): what failed attempts left.
    if (wasOpen) await deleteProjectionRows(client, targets, 'hunt_id > $1', [job.fill_cursor ?? '']);
    const fill = async (laneClient: pg.ClientBase, part: string[]) => {
      const counts = await recomputeInto(laneClient, targets, { huntIds: part, maxSeq, into: 'empty' });
      return counts.players + counts.clueCredits + counts.treasureWinners;
    };
    // Settled, not raced: a lane still running when the attempt failed could commit after the
    // retry's delete, and its rows would be there twice.
    const written = await settleAll([
      fill(client, first),
      ...others.map((part) =>
        withFillTransaction(pool, signal, async (laneClient) => {
          await holdFillLane(laneClient, projection, mark);
          return fill(laneClient, part);
        }),
      ),
    ]);
    await client.query(
      `UPDATE reprocess_jobs SET fill_cursor = $2, fill_mark = NULL, hunts_done = hunts_done + $3, hunts_total = greatest(hunts_total, hunts_done + $3),
         shadow_rows = shadow_rows + $4, updated_at = now() WHERE projection = $1`,
      [projection, huntIds[huntIds.length - 1], huntIds.length, written.reduce((sum, n) => sum + n, 0)],
    );
    return progress(false, huntIds.length);
  });
}

/**
 * Marks the job with this attempt's token, in a transaction of its own committed before any
 * lane writes, and says whether a mark was there already: an attempt that did not clear its
 * own may have left rows past the cursor in the shadows (an extra lane committed, then the
 * cursor's transaction failed). It first waits for the job row (an attempt in flight holds
 * it until its lanes are done), then for every extra lane holding the fill's lane lock
 * (holdFillLane): one whose attempt's own transaction died could still commit. In that
 * order: a lane never waits for the row, so neither wait can close a circle. Each wait is
 * bounded by OPEN_WAIT_MS, and retried past it. A run that no longer owns the job finds out
 * in the fill's own claim.
 */
async function openFillChunk(pool: pg.Pool, projection: ProjectionName, jobId: string, mark: string): Promise<boolean> {
  try {
    return await withBoundedTransaction(pool, { statementTimeoutMs: FILL_STATEMENT_MS, lockTimeoutMs: OPEN_WAIT_MS }, async (client) => {
      const { rows } = await client.query<{ mark: string | null }>('SELECT fill_mark AS mark FROM reprocess_jobs WHERE projection = $1 AND job_id = $2 FOR UPDATE', [
        projection,
        jobId,
      ]);
      if (rows.length === 0) return true;
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [FILL_LANE_LOCK, projection]);
      await client.query('UPDATE reprocess_jobs SET fill_mark = $2 WHERE projection = $1', [projection, mark]);
      return rows[0]?.mark !== null;
    });
  } catch (err) {
    // Not the chunk's size (fillFailedForGood's statement timeout): an attempt still running.
    if (sqlStateOf(err) === SqlState.lockNotAvailable) {
      throw new Error(`reprocess ${projection}: the fill's job row or lane lock stayed taken for ${OPEN_WAIT_MS / 1000} s (another attempt of the fill still running); retrying`, { cause: err });
    }
    throw err;
  }
}

/** How long a fill attempt waits at its mark for another attempt to end before it retries. */
const OPEN_WAIT_MS = 60_000;

/** The first key of the fill's lane lock (the second: the projection's hash); any constant of this project's own. */
const FILL_LANE_LOCK = 7_240_114;

/**
 * An extra lane's share of the fill's lane lock, to the end of its transaction: the next mark
 * (openFillChunk) and a newer run's prepare wait for it. Taken, the lane checks that its
 * attempt's mark still stands; a lane that started late (its attempt failed, and another
 * marked, or a newer run prepared, meanwhile) stops without writing.
 */
async function holdFillLane(client: pg.ClientBase, projection: ProjectionName, mark: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock_shared($1, hashtext($2))', [FILL_LANE_LOCK, projection]);
  const { rows } = await client.query<{ mark: string | null }>('SELECT fill_mark AS mark FROM reprocess_jobs WHERE projection = $1', [projection]);
  if (rows[0]?.mark !== mark) throw new Error(`reprocess ${projection}: a lane of a fill attempt found the job marked by another attempt; retrying`);
}

/**
 * Builds the shadows' indexes (the live tables' ones, buildShadowIndexes), then ANALYZEs them
 * (the planner needs statistics right after the swap), on `lanes` connections of their own at
 * once, as many as the fill's lanes use: each build and each ANALYZE uses one core, and one
 * after another the ANALYZEs alone were the fill's last 0.3 s on one core of two
 * (experiments §66). The two big tables come first in the list, so they go to different
 * connections. Each table commits on its own, so a retry finds what was built.
 * `jobClient`'s transaction holds the job row meanwhile, idle.
 */
async function finishShadows(pool: pg.Pool, jobClient: pg.ClientBase, projection: ProjectionName, lanes: number, signal: AbortSignal | undefined): Promise<void> {
  // The two big tables first (liveAndShadowTables: players, credits, winners), on different
  // connections; the hunt stats' shadow was made with its key, and is only analyzed.
  const tables: [live: string | undefined, shadow: string][] = [...liveAndShadowTables(projection), [undefined, HUNT_STATS_SHADOW]];
  const connections = Math.max(1, Math.min(lanes, tables.length));
  await allowIdleInTransaction(jobClient, FILL_LANE_WAIT_MS);
  await settleAll(
    Array.from({ length: connections }, async (_, lane) => {
      for (const [live, shadow] of tables.filter((_, i) => i % connections === lane)) {
        await withFillTransaction(pool, signal, async (client) => {
          if (live) await buildIndexesOfFilled(client, projection, live, shadow);
          await client.query(`ANALYZE ${escapeIdentifier(shadow)}`);
        });
      }
    }),
  );
}

/**
 * buildShadowIndexes for a filled shadow, its failures said for what they are: a key the
 * shadow holds twice is the fill's fault, not the data's (the live table's constraint is not
 * to blame); a build past the statement limit is the table's size, not a chunk's.
 */
async function buildIndexesOfFilled(client: pg.ClientBase, projection: ProjectionName, live: string, shadow: string): Promise<void> {
  try {
    await buildShadowIndexes(client, live, shadow);
  } catch (err) {
    const message = (err as Error | null)?.message ?? String(err);
    if (sqlStateOf(err) === SqlState.uniqueViolation) {
      throw new ReprocessStateError(
        `reprocess ${projection}: the filled ${shadow} holds a key twice (${message}). Either a unique index added to ${live} since the job started refuses what the rules compute (drop or fix it), or the fill wrote a row twice (a bug). Start reprocess again`,
      );
    }
    if (sqlStateOf(err) === SqlState.queryCanceled && message.includes('statement timeout')) {
      throw new ReprocessBlockedError(
        `reprocess ${projection}: building the indexes of ${shadow} took longer than the fill's statement limit (${FILL_STATEMENT_MS / 60_000} minutes): ${message}. Raise maintenance_work_mem (or max_parallel_maintenance_workers) for the role reprocess runs as, then start reprocess again`,
      );
    }
    throw err;
  }
}

/**
 * The live tables' indexes on shadows that lack them: a fill that an older version finished
 * left them out (its shadows had them from the start; it knew no build step).
 */
async function ensureShadowIndexes(client: pg.ClientBase, projection: ProjectionName): Promise<void> {
  for (const [live, shadow] of liveAndShadowTables(projection)) await buildIndexesOfFilled(client, projection, live, shadow);
}

/**
 * One catch-up round outside the fence: merges events stored since the shadows' cover, up
 * to a max(seq) read under an instantaneous fence and at most `maxEvents` seq values on, so
 * a round's time stays bounded. Repeat until a round is small and `complete`: the swap then
 * holds the fence only for the last few events.
 */
export async function catchUpShadow(pool: pg.Pool, projection: ProjectionName, jobId: string, lockTimeoutMs: number, maxEvents: number, signal?: AbortSignal): Promise<CatchUpResult> {
  const read = await withTransaction(pool, async (client) => {
    await boundStatements(client, FENCED_STEP_STATEMENT_MS);
    const job = await filledJob(client, projection, jobId);
    // A retried swap step whose swap committed has nothing to catch up: no fence for it.
    if (job.phase === 'swapped') return { swappedAt: job.covered_seq ?? 0 };
    await takeFence(client, lockTimeoutMs);
    return { newest: await newestEventSeq(client) };
  });
  if (read.swappedAt !== undefined) return { events: 0, coveredSeq: read.swappedAt, complete: true };
  const newest = read.newest;
  return withFillTransaction(pool, signal, async (client) => {
    const job = await filledJob(client, projection, jobId);
    const coveredSeq = job.covered_seq ?? 0;
    const bound = Math.min(newest, coveredSeq + maxEvents);
    if (job.phase === 'swapped') return { events: 0, coveredSeq, complete: true };
    // The merge's ON CONFLICT needs them, and so does the swap's check of the shadows' shape.
    await ensureShadowIndexes(client, projection);
    if (bound <= coveredSeq) return { events: 0, coveredSeq, complete: true };
    const merged = await mergeInto(client, shadowTargets(projection), { afterSeq: coveredSeq, maxSeq: bound });
    await client.query(
      `UPDATE reprocess_jobs SET covered_seq = $2, events_caught_up = events_caught_up + $3, shadow_rows = shadow_rows + $4,
         updated_at = now() WHERE projection = $1`,
      [projection, bound, merged.events, merged.rowsAdded],
    );
    return { events: merged.events, coveredSeq: bound, complete: bound === newest };
  });
}

/** Merges the last events and swaps the shadows in, in one transaction under the fence. */
export async function swapShadow(pool: pg.Pool, projection: ProjectionName, jobId: string, lockTimeoutMs: number, cancelled?: AbortSignal): Promise<SwapResult> {
  // A job cancelled while the swap waited (for the job's row, the fence, the live tables) or
  // merged: rolled back, so the live tables are untouched, as its cancellation says.
  const unlessCancelled = () => {
    if (cancelled?.aborted) throw new ReprocessCancelledError(`reprocess ${projection} (job ${jobId}): cancelled before the swap; the live tables are untouched`);
  };
  return withTransaction(pool, async (client) => {
    await boundStatements(client, FENCED_STEP_STATEMENT_MS);
    const job = await filledJob(client, projection, jobId);
    if (job.phase === 'swapped') return swapResultOf(job);
    // All before the fence: it would hold the hot path back for nothing.
    await assertLiveTablesReplaceable(client, projection);
    await assertShadowsMatchLive(client, projection);
    // Every table the swap alters or drops under the fence, shadows too (just filled, they are
    // autovacuum's likeliest next tables). First: this may wait, and the checks after it must
    // still hold when the fence is asked for.
    const live = liveTablesOf(projection);
    await keepMaintenanceOff(client, ['hunts', ...live.tables, ...Object.values(shadowTargets(projection))], lockTimeoutMs);
    await assertNoLongHolders(client, live, lockTimeoutMs);
    await takeFence(client, lockTimeoutMs);
    const fencedAt = performance.now();
    await lockForDrop(client, live, lockTimeoutMs);
    await assertShadowsMatchLive(client, projection); // again, now that no change can come between
    const newest = await newestEventSeq(client);
    const merged = await mergeInto(client, shadowTargets(projection), { afterSeq: job.covered_seq ?? 0 });
    await applyHuntStats(client);
    unlessCancelled();
    await swapInShadows(client, projection);
    await client.query(`DROP TABLE ${escapeIdentifier(HUNT_STATS_SHADOW)}`);
    await notifyHuntsChanged(client, ALL_HUNTS); // every leaderboard may have changed
    const { rows } = await client.query<JobRow>(
      `UPDATE reprocess_jobs SET phase = 'swapped', covered_seq = $2, max_seq = $2, events_caught_up = events_caught_up + $3,
         shadow_rows = shadow_rows + $4, fenced_events = $3, fence_ms = $5, updated_at = now(), finished_at = now()
       WHERE projection = $1 RETURNING *`,
      [projection, newest, merged.events, merged.rowsAdded, Math.round(performance.now() - fencedAt)],
    );
    return swapResultOf(rows[0] as JobRow); // the row is locked by filledJob: it exists
  });
}

/**
 * For a job cancelled during its swap step: the swap's result if it committed, waiting for
 * one in flight (a swap holds the job's row to its commit); otherwise the job is marked
 * cancelled in the same transaction, so an attempt the cancellation never reached (its
 * worker cut off from Temporal) can no longer swap after the job has reported cancelled.
 * Undefined when the swap did not commit, or a newer run owns the projection.
 */
export async function settleCancelledSwap(pool: pg.Pool, projection: ProjectionName, jobId: string, lockTimeoutMs: number): Promise<SwapResult | undefined> {
  return withBoundedTransaction(pool, { lockTimeoutMs, statementTimeoutMs: lockTimeoutMs + 1000 }, async (client) => {
    const { rows } = await client.query<JobRow>('SELECT * FROM reprocess_jobs WHERE projection = $1 FOR UPDATE', [projection]);
    const job = rows[0];
    if (!job || job.job_id !== jobId) return undefined;
    if (job.phase === 'swapped') return swapResultOf(job);
    await client.query(`UPDATE reprocess_jobs SET phase = 'cancelled', updated_at = now(), finished_at = now() WHERE projection = $1`, [projection]);
    return undefined;
  });
}

/** The swap's result when `jobId` is the projection's job and its swap committed; undefined otherwise. */
export async function swappedJob(pool: pg.Pool, projection: ProjectionName, jobId: string): Promise<SwapResult | undefined> {
  const { rows } = await pool.query<JobRow>(`SELECT * FROM reprocess_jobs WHERE projection = $1 AND job_id = $2 AND phase = 'swapped'`, [projection, jobId]);
  return rows[0] && swapResultOf(rows[0]);
}

/** Drops each live table and renames its shadow in; a dependent object created since the check still fails for good. */
async function swapInShadows(client: pg.ClientBase, projection: ProjectionName): Promise<void> {
  try {
    for (const [live, shadow] of liveAndShadowTables(projection)) await swapInShadow(client, live, shadow);
  } catch (err) {
    if (sqlStateOf(err) !== SqlState.dependentObjectsStillExist) throw err;
    throw new ReprocessBlockedError(blockedMessage(projection, (err as { detail?: string }).detail?.split('\n') ?? [(err as Error).message]));
  }
}

/**
 * Fails for good (ReprocessBlockedError), naming them, when objects outside the projection
 * depend on its live tables, or when they carry what the swap would drop without a word
 * (live-table-shape.ts).
 */
export async function assertLiveTablesReplaceable(db: pg.ClientBase | pg.Pool, projection: ProjectionName): Promise<void> {
  const tables = Object.values(PROJECTIONS[projection]);
  const blockers = await objectsBlockingDrop(db, tables);
  if (blockers.length > 0) throw new ReprocessBlockedError(blockedMessage(projection, blockers.map((b) => `${b.object} depends on table ${b.table}`)));
  const attachments = await attachmentsTheSwapWouldLose(db, tables);
  if (attachments.length > 0) {
    throw new ReprocessBlockedError(
      `reprocess ${projection}: the swap would lose what the live tables carry: ${attachments.join('; ')}. ` +
        'The swap drops each live table and renames its rebuilt copy in, and cannot carry these over. ' +
        'Remove them (or run reprocess as the tables\' owner), start reprocess again, and put them back after the swap',
    );
  }
}

/**
 * Fails for good (ReprocessStateError) when a live table changed shape since the shadows
 * were made from it (a migration, an index or a constraint added): the swap would undo it.
 */
async function assertShadowsMatchLive(client: pg.ClientBase, projection: ProjectionName): Promise<void> {
  const changes: string[] = [];
  for (const [live, shadow] of liveAndShadowTables(projection)) {
    for (const change of await shapeChanges(client, live, shadow)) changes.push(`${live}: ${change}`);
  }
  if (changes.length > 0) {
    throw new ReprocessStateError(
      `reprocess ${projection}: the live tables changed since this run made their copies (${changes.join('; ')}); ` +
        'the swap would undo that. Start reprocess again: a new run copies them as they are now',
    );
  }
}

function blockedMessage(projection: ProjectionName, dependencies: string[]): string {
  return (
    `reprocess ${projection}: the swap cannot replace the live tables: ${dependencies.join('; ')}. ` +
    'The swap drops each live table and renames its rebuilt copy in, which Postgres refuses while another object depends on it. ' +
    'Drop those objects (for a view: DROP VIEW name), start reprocess again, and recreate them after the swap'
  );
}

const swapResultOf = (job: JobRow): SwapResult => ({
  rows: job.shadow_rows, startedSeq: job.started_seq ?? 0, eventsCaughtUp: job.events_caught_up,
  fencedEvents: job.fenced_events ?? 0, fenceMs: job.fence_ms ?? 0, maxSeq: job.max_seq ?? 0,
});

/** The job, locked and owned by this run, once the fill is complete (or already swapped). */
async function filledJob(client: pg.ClientBase, projection: ProjectionName, jobId: string): Promise<JobRow> {
  const job = await claimJob(client, projection, jobId);
  if (job.phase === 'cancelled') throw new ReprocessCancelledError(`reprocess ${projection} (job ${jobId}): the job was cancelled before its swap; the live tables are untouched`);
  if (job.phase !== 'filled' && job.phase !== 'swapped') throw new ReprocessStateError(`reprocess ${projection}: the fill is not complete (phase ${job.phase})`);
  return job;
}

/** Locks the job row (steps of one projection take turns) and checks this run owns it. */
async function claimJob(client: pg.ClientBase, projection: ProjectionName, jobId: string): Promise<JobRow & { mark: string }> {
  const { rows } = await client.query<JobRow & { mark: string }>(`SELECT *, ${markOf('reprocess_jobs')} AS mark FROM reprocess_jobs WHERE projection = $1 FOR UPDATE`, [projection]);
  const job = rows[0];
  if (!job || job.job_id !== jobId) {
    throw new ReprocessSupersededError(
      `reprocess ${projection}: run ${jobId} no longer owns the shadow tables (now owned by ${job?.job_id ?? 'nobody'}); the newer run rebuilds them`,
    );
  }
  return job;
}

/**
 * Each transaction's statement limit, set here rather than inherited: a role's or database's
 * default (managed Postgres often sets 30-60 s) failed a big hunt's fill on every attempt,
 * retried for ever. Below the steps' start-to-close (workflows/reprocess.ts): the fenced
 * steps' 10 minutes, the fill's and catch-up's 2 hours.
 */
const FENCED_STEP_STATEMENT_MS = 9 * 60_000;
export const FILL_STATEMENT_MS = 110 * 60_000;

/**
 * A transaction of the fill or the catch-up: its statements under the fill's limit, and the
 * running one cancelled when `signal` aborts (the step cancelled from the Web UI, or timed
 * out). Without it a cancelled job's recompute or index build ran on for up to the limit,
 * holding the job row that the next run's prepare waits for.
 */
function withFillTransaction<T>(pool: pg.Pool, signal: AbortSignal | undefined, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withBoundedTransaction(pool, { statementTimeoutMs: FILL_STATEMENT_MS, signal }, work);
}

async function boundStatements(client: pg.ClientBase, ms: number): Promise<void> {
  await client.query(`SELECT set_config('statement_timeout', $1, true)`, [`${ms}ms`]);
}

/** How long a fill chunk's own transaction may wait idle for its other lanes: the fill step's start-to-close. */
const FILL_LANE_WAIT_MS = 2 * 60 * 60 * 1000;

/** Hunt stats in place: recomputed ones from the shadow, hunts without events to zero. */
async function applyHuntStats(client: pg.ClientBase): Promise<void> {
  await client.query(
    `INSERT INTO hunts AS h (hunt_id, events_applied, as_of)
     SELECT hunt_id, events_applied, as_of FROM ${escapeIdentifier(HUNT_STATS_SHADOW)}
     ON CONFLICT (hunt_id) DO UPDATE SET events_applied = excluded.events_applied, as_of = excluded.as_of, updated_at = now()
      WHERE (h.events_applied, h.as_of) IS DISTINCT FROM (excluded.events_applied, excluded.as_of)`,
  );
  await client.query(
    `UPDATE hunts h SET events_applied = 0, as_of = NULL, updated_at = now()
      WHERE (h.events_applied <> 0 OR h.as_of IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM ${escapeIdentifier(HUNT_STATS_SHADOW)} s WHERE s.hunt_id = h.hunt_id)`,
  );
}

/**
 * Up to $2 hunts with events after hunt $1 in byte order: a loose index scan, one index
 * probe per hunt (DISTINCT would read every event).
 */
const NEXT_HUNTS = `WITH RECURSIVE next_hunt(hunt_id, n) AS (
       SELECT (SELECT e.hunt_id FROM events e WHERE e.hunt_id > $1::text ORDER BY e.hunt_id LIMIT 1), 1
       UNION ALL
       SELECT (SELECT e.hunt_id FROM events e WHERE e.hunt_id > h.hunt_id ORDER BY e.hunt_id LIMIT 1), h.n + 1
         FROM next_hunt h WHERE h.hunt_id IS NOT NULL AND h.n < $2
     )`;

/**
 * Up to `limit` hunts with events after `after`, in byte order, each with its stored events as
 * the hot path counts them (hunts.events_applied): an estimate, which a corrupted count (what
 * reprocess repairs) only makes wrong in the size of a chunk.
 */
async function sizedHuntsAfter(db: pg.ClientBase, after: string, limit: number): Promise<SizedHunt[]> {
  const { rows } = await db.query<{ hunt_id: string; events: number }>(
    `${NEXT_HUNTS} SELECT n.hunt_id, greatest(coalesce(h.events_applied, 0), 1)::float8 AS events
       FROM next_hunt n LEFT JOIN hunts h ON h.hunt_id = n.hunt_id WHERE n.hunt_id IS NOT NULL ORDER BY n.n`,
    [after, limit],
  );
  return rows.map((r) => ({ huntId: r.hunt_id, events: r.events }));
}

/** How many hunts have events, counted in Postgres (not every id brought over to count them). */
async function countHunts(db: pg.ClientBase | pg.Pool): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`${NEXT_HUNTS} SELECT count(*)::int AS n FROM next_hunt WHERE hunt_id IS NOT NULL`, ['', 2 ** 31 - 1]);
  return rows[0]?.n ?? 0;
}
