/**
 * Reprocess: rebuild a projection from the raw event store into shadow tables while the hot
 * path keeps ingesting, then swap them in atomically. No event is lost or counted twice:
 *
 * 1. prepare: (re)create the shadows, then, under the fence for an instant, note S = max(seq).
 *    Every hot-path transaction locks `hunts` before it inserts events, so once the fence
 *    is held no transaction with a seq <= S is still in flight: every event with seq <= S
 *    is committed and visible to the fill (seq is assigned at insert but becomes visible at
 *    commit, so without the fence a lower seq could still appear later and be missed).
 * 2. fill: recompute hunt after hunt (byte order) into the shadows from events with
 *    seq <= S, outside the fence; each chunk commits with its cursor in reprocess_jobs.
 * 3. swap, in one transaction under the fence: recompute fully (no seq limit) every hunt
 *    with an event seq > S, set the hunts' stats in place, drop the live tables and rename
 *    the shadows (and their indexes) to the live names.
 *
 * The fence is `LOCK TABLE hunts IN EXCLUSIVE MODE`: it waits for the hot path's in-flight
 * transactions (their `INSERT .. ON CONFLICT` on hunts holds ROW EXCLUSIVE) and holds back
 * new ones, and, unlike SHARE ROW EXCLUSIVE, also repairs that lock hunt rows with
 * `SELECT .. FOR UPDATE` (ROW SHARE). Plain reads (the read API) go on.
 *
 * The hot path's named prepared statements survive the swap: dropping a table invalidates
 * the plans that used it, and Postgres re-analyzes them from the query text on next use,
 * resolving `player_scores` to the renamed shadow (same columns, so same result types).
 *
 * Idempotent: reprocess_jobs names the run that owns the shadows; a rerun of any step ends
 * in the same state, a swap that already happened reports its recorded result, and a newer
 * run takes the shadows over (the older run's next step fails with ReprocessSupersededError).
 */
import type pg from 'pg';
import { LIVE_PROJECTION_TABLES, quoteIdent, recomputeInto, type ProjectionTargets } from './recompute';

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
/** A step was called in a phase it cannot run in (a workflow bug, not a transient fault). */
export class ReprocessStateError extends Error {}

const SHADOW_SUFFIX = '_shadow';
// The hunts table is the fence and is never swapped: its stats are updated in place.
const HUNT_STATS_SHADOW = 'hunt_stats_shadow';

function shadowTargets(projection: ProjectionName): Required<ProjectionTargets> {
  const live = PROJECTIONS[projection];
  return {
    players: live.players + SHADOW_SUFFIX,
    clueCredits: live.clueCredits + SHADOW_SUFFIX,
    treasureWinners: live.treasureWinners + SHADOW_SUFFIX,
    huntStats: HUNT_STATS_SHADOW,
  };
}

function liveAndShadowTables(projection: ProjectionName): [live: string, shadow: string][] {
  return Object.values(PROJECTIONS[projection]).map((live) => [live, live + SHADOW_SUFFIX]);
}

interface JobRow {
  job_id: string;
  phase: 'preparing' | 'filling' | 'filled' | 'swapped';
  started_seq: number | null;
  fill_cursor: string | null;
  hunts_total: number;
  hunts_done: number;
  rows_filled: number;
  max_seq: number | null;
  hunts_caught_up: number | null;
  rows_swapped: number | null;
}

export interface PrepareResult {
  startedSeq: number;
  huntsTotal: number;
}

export interface FillProgress {
  huntsDone: number;
  huntsTotal: number;
  done: boolean;
}

export interface SwapResult {
  /** Rows in the swapped-in projection tables at the swap. */
  rows: number;
  /** Hunts recomputed under the fence because events arrived after the fill's snapshot. */
  huntsCaughtUp: number;
  startedSeq: number;
  /** The newest seq the swapped-in tables cover; the hot path applies the rest. */
  maxSeq: number;
}

/** Takes over the job record, (re)creates empty shadows, and notes the fill's seq bound. */
export async function prepareShadow(pool: pg.Pool, projection: ProjectionName, jobId: string, lockTimeoutMs: number): Promise<PrepareResult> {
  await inTransaction(pool, async (client) => {
    await client.query(
      `INSERT INTO reprocess_jobs (projection, job_id, phase) VALUES ($1, $2, 'preparing')
       ON CONFLICT (projection) DO UPDATE SET job_id = excluded.job_id, phase = 'preparing', started_seq = NULL,
         fill_cursor = NULL, hunts_total = 0, hunts_done = 0, rows_filled = 0, max_seq = NULL, hunts_caught_up = NULL,
         rows_swapped = NULL, started_at = now(), updated_at = now(), finished_at = NULL`,
      [projection, jobId],
    );
    // Leftovers of a crashed or superseded run are dropped: the shadows are rebuilt from scratch.
    for (const [live, shadow] of liveAndShadowTables(projection)) {
      await client.query(`DROP TABLE IF EXISTS ${quoteIdent(shadow)}`);
      await client.query(`CREATE TABLE ${quoteIdent(shadow)} (LIKE ${quoteIdent(live)} INCLUDING ALL)`);
    }
    await client.query(`DROP TABLE IF EXISTS ${quoteIdent(HUNT_STATS_SHADOW)}`);
    await client.query(`CREATE TABLE ${quoteIdent(HUNT_STATS_SHADOW)} (LIKE hunts INCLUDING ALL)`);
  });
  const huntsTotal = await countHunts(pool);
  return inTransaction(pool, async (client) => {
    await claimJob(client, projection, jobId);
    await takeFence(client, lockTimeoutMs);
    const { rows } = await client.query<{ seq: number }>('SELECT coalesce(max(seq), 0) AS seq FROM events');
    const startedSeq = rows[0]?.seq ?? 0;
    await client.query(
      `UPDATE reprocess_jobs SET phase = 'filling', started_seq = $2, hunts_total = $3, updated_at = now() WHERE projection = $1`,
      [projection, startedSeq, huntsTotal],
    );
    return { startedSeq, huntsTotal };
  });
}

/**
 * Fills the shadows for the next `huntsPerChunk` hunts after the cursor, in one transaction
 * with the cursor, so a retry resumes exactly where the last commit left off. When no hunt
 * is left it analyzes the shadows (the planner needs statistics right after the swap).
 */
export async function fillShadowChunk(pool: pg.Pool, projection: ProjectionName, jobId: string, huntsPerChunk: number): Promise<FillProgress> {
  return inTransaction(pool, async (client) => {
    const job = await claimJob(client, projection, jobId);
    const progress = (done: boolean, extra = 0) => ({
      huntsDone: job.hunts_done + extra,
      huntsTotal: Math.max(job.hunts_total, job.hunts_done + extra),
      done,
    });
    if (job.phase === 'filled' || job.phase === 'swapped') return progress(true);
    if (job.phase !== 'filling' || job.started_seq === null) throw new ReprocessStateError(`reprocess ${projection}: cannot fill in phase ${job.phase}`);

    const huntIds = await nextHunts(client, job.fill_cursor ?? '', huntsPerChunk);
    if (huntIds.length === 0) {
      for (const table of Object.values(shadowTargets(projection))) await client.query(`ANALYZE ${quoteIdent(table)}`);
      await client.query(`UPDATE reprocess_jobs SET phase = 'filled', updated_at = now() WHERE projection = $1`, [projection]);
      return progress(true);
    }
    const counts = await recomputeInto(client, shadowTargets(projection), { huntIds, maxSeq: job.started_seq });
    const written = counts.players + counts.clueCredits + counts.treasureWinners - counts.deleted;
    await client.query(
      `UPDATE reprocess_jobs SET fill_cursor = $2, hunts_done = hunts_done + $3, hunts_total = greatest(hunts_total, hunts_done + $3),
         rows_filled = rows_filled + $4, updated_at = now() WHERE projection = $1`,
      [projection, huntIds[huntIds.length - 1], huntIds.length, written],
    );
    return progress(false, huntIds.length);
  });
}

/** Catches up and swaps the shadows in, in one transaction under the fence. */
export async function swapShadow(pool: pg.Pool, projection: ProjectionName, jobId: string, lockTimeoutMs: number): Promise<SwapResult> {
  return inTransaction(pool, async (client) => {
    const job = await claimJob(client, projection, jobId);
    if (job.phase === 'swapped') return swapResultOf(job);
    if (job.phase !== 'filled' || job.started_seq === null) throw new ReprocessStateError(`reprocess ${projection}: cannot swap in phase ${job.phase}`);
    await takeFence(client, lockTimeoutMs);

    const { rows: seqRows } = await client.query<{ seq: number }>('SELECT coalesce(max(seq), 0) AS seq FROM events');
    const maxSeq = seqRows[0]?.seq ?? 0;
    const { rows: late } = await client.query<{ hunt_id: string }>(
      'SELECT DISTINCT hunt_id FROM events WHERE seq > $1 ORDER BY hunt_id',
      [job.started_seq],
    );
    const caughtUp = await recomputeInto(client, shadowTargets(projection), { huntIds: late.map((r) => r.hunt_id) });
    await applyHuntStats(client);
    for (const [live, shadow] of liveAndShadowTables(projection)) await replaceTable(client, live, shadow);
    await client.query(`DROP TABLE ${quoteIdent(HUNT_STATS_SHADOW)}`);

    const rows = job.rows_filled + caughtUp.players + caughtUp.clueCredits + caughtUp.treasureWinners - caughtUp.deleted;
    const { rows: done } = await client.query<JobRow>(
      `UPDATE reprocess_jobs SET phase = 'swapped', max_seq = $2, hunts_caught_up = $3, rows_swapped = $4,
         updated_at = now(), finished_at = now() WHERE projection = $1 RETURNING *`,
      [projection, maxSeq, late.length, rows],
    );
    return swapResultOf(done[0] as JobRow); // the row is locked by claimJob: it exists
  });
}

function swapResultOf(job: JobRow): SwapResult {
  return { rows: job.rows_swapped ?? 0, huntsCaughtUp: job.hunts_caught_up ?? 0, startedSeq: job.started_seq ?? 0, maxSeq: job.max_seq ?? 0 };
}

/** Locks the job row (steps of one projection take turns) and checks this run owns it. */
async function claimJob(client: pg.ClientBase, projection: ProjectionName, jobId: string): Promise<JobRow> {
  const { rows } = await client.query<JobRow>('SELECT * FROM reprocess_jobs WHERE projection = $1 FOR UPDATE', [projection]);
  const job = rows[0];
  if (!job || job.job_id !== jobId) {
    throw new ReprocessSupersededError(
      `reprocess ${projection}: run ${jobId} no longer owns the shadow tables (now owned by ${job?.job_id ?? 'nobody'}); the newer run rebuilds them`,
    );
  }
  return job;
}

/**
 * The fence. lock_timeout bounds how long the hot path queues behind our lock request
 * (it waits on in-flight transactions first); on timeout the step fails and is retried.
 */
async function takeFence(client: pg.ClientBase, lockTimeoutMs: number): Promise<void> {
  await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${lockTimeoutMs}ms`]);
  await client.query('LOCK TABLE hunts IN EXCLUSIVE MODE');
}

/** Hunt stats in place: recomputed ones from the shadow, hunts without events to zero. */
async function applyHuntStats(client: pg.ClientBase): Promise<void> {
  await client.query(
    `INSERT INTO hunts AS h (hunt_id, events_applied, as_of)
     SELECT hunt_id, events_applied, as_of FROM ${quoteIdent(HUNT_STATS_SHADOW)}
     ON CONFLICT (hunt_id) DO UPDATE SET events_applied = excluded.events_applied, as_of = excluded.as_of, updated_at = now()
      WHERE (h.events_applied, h.as_of) IS DISTINCT FROM (excluded.events_applied, excluded.as_of)`,
  );
  await client.query(
    `UPDATE hunts h SET events_applied = 0, as_of = NULL, updated_at = now()
      WHERE (h.events_applied <> 0 OR h.as_of IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM ${quoteIdent(HUNT_STATS_SHADOW)} s WHERE s.hunt_id = h.hunt_id)`,
  );
}

/**
 * Drops `live` and renames `shadow` to it, then gives the shadow's indexes the live ones'
 * names (matched by definition), so the schema reads the same as before the swap. Renaming
 * a constraint's index renames the constraint too.
 */
async function replaceTable(client: pg.ClientBase, live: string, shadow: string): Promise<void> {
  const liveIndexes = await indexesOf(client, live);
  const shadowIndexes = await indexesOf(client, shadow);
  await client.query(`DROP TABLE ${quoteIdent(live)}`);
  await client.query(`ALTER TABLE ${quoteIdent(shadow)} RENAME TO ${quoteIdent(live)}`);
  for (const [shape, name] of shadowIndexes) {
    const original = liveIndexes.get(shape);
    if (original && original !== name) await client.query(`ALTER INDEX ${quoteIdent(name)} RENAME TO ${quoteIdent(original)}`);
  }
}

/** Index definition without its name and table (`UNIQUE|USING btree (...)`) -> index name. */
async function indexesOf(client: pg.ClientBase, table: string): Promise<Map<string, string>> {
  const { rows } = await client.query<{ name: string; unique: boolean; def: string }>(
    `SELECT c.relname AS name, i.indisunique AS unique, pg_get_indexdef(i.indexrelid) AS def
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1::regclass ORDER BY c.relname`,
    [quoteIdent(table)],
  );
  const byShape = new Map<string, string>();
  for (const row of rows) byShape.set(`${row.unique ? 'UNIQUE' : ''}|${row.def.replace(/^.*? ON \S+ /, '')}`, row.name);
  return byShape;
}

/** The next hunts after `after` in byte order: a loose index scan, one probe per hunt. */
async function nextHunts(client: pg.ClientBase, after: string, limit: number): Promise<string[]> {
  const { rows } = await client.query<{ hunt_id: string }>(
    `WITH RECURSIVE next_hunt(hunt_id, n) AS (
       SELECT (SELECT e.hunt_id FROM events e WHERE e.hunt_id > $1::text ORDER BY e.hunt_id LIMIT 1), 1
       UNION ALL
       SELECT (SELECT e.hunt_id FROM events e WHERE e.hunt_id > h.hunt_id ORDER BY e.hunt_id LIMIT 1), h.n + 1
         FROM next_hunt h WHERE h.hunt_id IS NOT NULL AND h.n < $2
     ) SELECT hunt_id FROM next_hunt WHERE hunt_id IS NOT NULL`,
    [after, limit],
  );
  return rows.map((r) => r.hunt_id);
}

/** Distinct hunts with events, by the same loose index scan (count(DISTINCT) would read every event). */
async function countHunts(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `WITH RECURSIVE hunt(hunt_id) AS (
       SELECT (SELECT hunt_id FROM events ORDER BY hunt_id LIMIT 1)
       UNION ALL
       SELECT (SELECT e.hunt_id FROM events e WHERE e.hunt_id > h.hunt_id ORDER BY e.hunt_id LIMIT 1) FROM hunt h WHERE h.hunt_id IS NOT NULL
     ) SELECT count(hunt_id)::int AS n FROM hunt`,
  );
  return rows[0]?.n ?? 0;
}

async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (err) {
    // A broken connection cannot roll back; drop it from the pool instead of reusing it.
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(err as Error);
    throw err;
  }
}
