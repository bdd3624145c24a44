/**
 * Reconciliation: recompute hunts' final results from the raw event store (recomputeInto,
 * the set-based rules, property-tested against the reference fold in src/rules, their
 * definition), diff them against the live projections, record the drift, and
 * repair the live rows. All of a group's work happens in ONE transaction, and what is
 * compared and written happens under the hunts' fence rows (hunts, FOR UPDATE): the hot path
 * locks the same rows before it stores or scores anything of those hunts, so no increment
 * can land between "recompute" and "write" (DESIGN invariant 6).
 *
 * The recomputation itself, the long part (a hunt of 2M events: seconds), runs before the
 * fence, over the events up to a seq that covers every event the hunts had (coveredSeq);
 * the hot path goes on storing their events meanwhile. So does the comparison of every live
 * row with the result, which keeps the keys that differ (projection-diff.ts). Under the
 * fence, the keys the events stored since touch are added to those, the events are merged
 * in (mergeInto: "earliest of a union is earliest of the earliests"), and only those keys
 * are compared again, recorded and rewritten. Holding the fence for the whole recomputation
 * stopped every lane with one of the hunts for as long as it took: 8 s per run for a hunt of
 * 2M events, every run of the schedule; holding it for the whole comparison, 5.6 s per run
 * for a hunt of 1.1M events with one player drifted.
 */
import type pg from 'pg';
import { notifyHuntsChanged } from '../hunt-changes';
import { mergeInto, recomputeInto } from '../batch/recompute';
import { lockHuntFences } from '../hot-path/apply-events';
import { settledBound } from '../batch/settled-seq';
import { withBoundedTransaction, type StatementBounds } from '../bounded-transaction';
import { describeDataError, isSeqCollision } from '../hot-path/errors';
import { advanceSequences } from '../serial-sequences';
import { SqlState, sqlStateOf } from '../sql-state';
import type { SizedHunt } from '../hunt-groups';
import { clearReconcileFailures, isHuntFailure, recordReconcileFailure } from './reconcile-failures';
import { addKeysTouchedSince, createComparisonTables, FINAL, findSuspects, recordDrift, repairSuspects } from './projection-diff';

export interface HuntReconciliation {
  huntId: string;
  playersChecked: number;
  playersDrifted: number;
  treasuresChanged: number;
  /** Clue credits that differed (a credit can differ where no player total does: an earlier find worth the same points). */
  creditsDrifted: number;
  repaired: boolean;
}

/**
 * The fence, taken as the hot path takes it: sorted, so the two cannot deadlock, and
 * creating a missing row. A plain `SELECT .. FOR UPDATE` missed a hunt whose row its first
 * transaction committed while the statement waited for another hunt's fence: its later
 * transactions went on unheld, and the repair wrote over one. A row made here for a hunt
 * with no event (an orphan's, a name typed by hand) has no as_of: unknown to the read API.
 */
async function lockFences(client: pg.ClientBase, hunts: readonly string[]): Promise<void> {
  await lockHuntFences(client, hunts);
}

/**
 * A seq that covers every event `hunts` have stored, and that their next events will be
 * above: read holding their fences for an instant, which waits for the hot path's
 * transactions of these hunts in flight, then given back by rolling back to a savepoint
 * (row locks taken after a savepoint go with it). Every writer of events locks the fence
 * before it takes a seq, and a seq handed out later is larger than any handed out before
 * (the seq sequence's CACHE 1, which reprocess relies on too). The fences are taken as the
 * hot path takes them, creating a missing row: a hunt's first transaction, its row not yet
 * committed, is waited for too, where `FOR UPDATE` would not see the row at all; the row
 * goes with the savepoint, so a hunt named here that has no events stays unknown.
 */
async function seqCoveringHunts(client: pg.ClientBase, hunts: readonly string[]): Promise<number> {
  await client.query('SAVEPOINT reconcile_covered_seq');
  await lockHuntFences(client, hunts);
  const { rows } = await client.query<{ seq: number }>('SELECT coalesce(max(seq), 0) AS seq FROM events');
  await client.query('ROLLBACK TO SAVEPOINT reconcile_covered_seq');
  await client.query('RELEASE SAVEPOINT reconcile_covered_seq');
  return rows[0]?.seq ?? 0;
}

/**
 * The job a run's rows are recorded for: /metrics's reconcile drift figures read only
 * reconcile's (migration 021), not those of data quality's checks, which reconcile too.
 */
export type RecordingJob = 'reconcile' | 'data-quality';

/**
 * Reconciles the given hunts (one transaction, fenced); records drift under `runId`, for `job`.
 * `bounds` ties the transaction to the job step running it (bounded-transaction.ts).
 */
export async function reconcileHunts(
  pool: pg.Pool,
  huntIds: readonly string[],
  runId: string,
  repair: boolean,
  bounds?: StatementBounds,
  job: RecordingJob = 'reconcile',
): Promise<HuntReconciliation[]> {
  const hunts = [...new Set(huntIds)].sort();
  if (hunts.length === 0) return [];
  return withBoundedTransaction(pool, bounds, async (client) => {
    // Held from here to the end although the fence rows are locked only later (their upsert
    // then takes ROW EXCLUSIVE, as the hot path does): a reprocess swap (LOCK TABLE hunts
    // EXCLUSIVE, then it drops the projection tables this run reads) waits for the run, and
    // both take hunts first, so neither can hold what the other waits for (a holder's stronger
    // request goes ahead of a waiter it blocks). The hot path's writes are not held by it.
    await client.query('LOCK TABLE hunts IN ROW SHARE MODE');
    await createComparisonTables(client);
    const coveredSeq = await seqCoveringHunts(client, hunts);
    await recomputeInto(client, FINAL, { huntIds: hunts, maxSeq: coveredSeq });
    const playersCompared = await findSuspects(client, hunts);
    // The fence, for the rest of the transaction: every event of these hunts is committed
    // now, and none is stored until this transaction ends.
    await lockFences(client, hunts);
    await addKeysTouchedSince(client, hunts, coveredSeq);
    await mergeInto(client, FINAL, { afterSeq: coveredSeq, huntIds: hunts });
    const drift = await recordDrift(client, hunts, runId);
    const results = drift.map((r) => ({
      huntId: r.hunt_id,
      playersChecked: playersCompared.get(r.hunt_id) ?? 0,
      playersDrifted: r.players_drifted,
      treasuresChanged: r.treasures_changed,
      creditsDrifted: r.credits_drifted,
      repaired: repair,
    }));
    if (repair) {
      await repairSuspects(client);
      const changed = results.filter(hasDrift).map((r) => r.huntId);
      if (changed.length > 0) await notifyHuntsChanged(client, changed);
    }
    await client.query(
      `INSERT INTO reconcile_runs (job, run_id, hunt_id, players_checked, players_drifted, treasures_changed, credits_drifted, repaired)
       SELECT $8, $1, * FROM unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::int[], $7::bool[])
       ON CONFLICT (run_id, hunt_id) DO UPDATE SET players_checked = excluded.players_checked,
         players_drifted = excluded.players_drifted, treasures_changed = excluded.treasures_changed,
         credits_drifted = excluded.credits_drifted, repaired = excluded.repaired, reconciled_at = now()`,
      [runId, results.map((r) => r.huntId), results.map((r) => r.playersChecked), results.map((r) => r.playersDrifted),
        results.map((r) => r.treasuresChanged), results.map((r) => r.creditsDrifted), results.map((r) => r.repaired), job],
    );
    // Only a repairing run has put the hunts right: a run that only checks (data quality's
    // drift check, `--no-repair`) never writes the live tables a failure may lie in.
    if (repair) await clearReconcileFailures(client, hunts);
    // Fence rows the fence made for hunts without an event (an orphan's, a name typed by hand)
    // go again: the checks that page over `hunts` would count them as hunts.
    await client.query(
      `DELETE FROM hunts h WHERE h.hunt_id = ANY($1::text[]) AND h.as_of IS NULL AND h.events_applied = 0
          AND NOT EXISTS (SELECT 1 FROM events e WHERE e.hunt_id = h.hunt_id)`,
      [hunts],
    );
    return results;
  });
}

/**
 * A group's size in events, all of its hunts' stored events (what the recomputation reads),
 * not only those of the run's range: a hunt with one new event is recomputed whole. One hunt
 * of 4M events took 89 s, so a group of this budget takes about 45 s, far inside the
 * statement timeout; only a single hunt of some 25M events would not fit.
 */
export const EVENTS_PER_TRANSACTION = 2_000_000;

/** A hunt whose reconciliation failed for what it holds, with the database's words. */
export interface FailedHunt {
  huntId: string;
  error: string;
}

/**
 * Reconciles `huntIds` (sorted) as one group, unless the database refuses it for what its
 * hunts hold: then the group is split until the hunts responsible are alone, and each of
 * those is recorded in reconcile_failures, for later runs to try again, and passed.
 * Retrying would fail the same way for ever and hold everything behind it. `done` is called
 * after each part that ended, in order (committed, or its hunt recorded and passed), so a
 * caller's cursor can move after each. Failures of the database's state, and a cancelled
 * step, are thrown.
 */
export async function reconcileRecordingFailures(
  pool: pg.Pool,
  huntIds: string[],
  runId: string,
  repair: boolean,
  bounds: StatementBounds | undefined,
  done: (huntIds: readonly string[], results: readonly HuntReconciliation[], failed: readonly FailedHunt[]) => Promise<void>,
  job: RecordingJob = 'reconcile',
): Promise<void> {
  let results: HuntReconciliation[];
  try {
    results = await reconcileHunts(pool, huntIds, runId, repair, bounds, job).catch(async (err: unknown) => {
      // A drift row drew an id a stored row holds (a restore that did not carry its
      // sequence): no hunt's fault. Once the sequence is past the stored ids (moved here, or
      // by the ids the failed statement drew), the group goes again; a second collision is
      // thrown as an outage (the step's retry), and a role that may not move it names the command.
      if (!isSeqCollision(err) || bounds?.signal?.aborted) throw err;
      await advanceSequences(pool);
      return reconcileHunts(pool, huntIds, runId, repair, bounds, job);
    });
  } catch (err) {
    if (bounds?.signal?.aborted || !isHuntFailure(err)) throw err;
    if (huntIds.length > 1) {
      // A refused value fails in milliseconds: halve. The statement limit fails after 10
      // minutes a try: each hunt alone, so one slow hunt costs one more try, not six.
      const half = Math.ceil(huntIds.length / 2);
      const parts = sqlStateOf(err) === SqlState.queryCanceled ? huntIds.map((h) => [h]) : [huntIds.slice(0, half), huntIds.slice(half)];
      for (const part of parts) await reconcileRecordingFailures(pool, part, runId, repair, bounds, done, job);
      return;
    }
    const failed = { huntId: huntIds[0] as string, error: describeDataError(err) };
    // Recorded by a run that only checks too: the failure is a finding, and a repairing
    // run moves the watermark past the hunt, so only the record brings it back (only a
    // repairing run clears it).
    await recordReconcileFailure(pool, failed.huntId, runId, failed.error, repair);
    await done(huntIds, [], [failed]);
    return;
  }
  // Outside the try: what `done` does (a checkpoint, a repair) is not the group's failure.
  await done(huntIds, results, []);
}

export const RECONCILE_JOB = 'reconcile';

/**
 * The next reconcile scope's seq range: from the watermark to the newest event stored at
 * least `settleMs` ago (once no event below it can still appear: settled-seq.ts). Its hunts
 * are those with an event in the range, taken by seq alone (openSeqRangeScope): commit
 * lanes interleave, so an event older by seq can carry a later ingested_at.
 */
export async function seqRangeSinceWatermark(pool: pg.Pool, settleMs: number): Promise<{ fromSeq: number; toSeq: number }> {
  await pool.query(`INSERT INTO job_watermarks (job) VALUES ($1) ON CONFLICT DO NOTHING`, [RECONCILE_JOB]);
  const { rows } = await pool.query<{ last_seq: number }>(`SELECT last_seq FROM job_watermarks WHERE job = $1`, [RECONCILE_JOB]);
  const fromSeq = rows[0]?.last_seq ?? 0;
  // Throws, naming them, while transactions inserting events outlast the wait: the step is retried.
  const { toSeq } = await settledBound(pool, fromSeq, settleMs);
  return { fromSeq, toSeq };
}

/** A reconcile run's hunts, read page by page in byte order, never all at once. */
export interface HuntScope {
  total: number;
  /** How many of the scope's hunts sort at or before `huntId` (progress on resume). */
  countUpTo(huntId: string): Promise<number>;
  /** Up to `limit` hunts after `after` ('' for the first page), sorted, with their sizes. */
  page(after: string, limit: number): Promise<SizedHunt[]>;
  close(): Promise<void>;
}

const SIZE_OF = (alias: string) => `coalesce((SELECT h.events_applied FROM hunts h WHERE h.hunt_id = ${alias}.hunt_id), 0)::float8 AS events`;

/**
 * The hunts with an event whose seq is in (fromSeq, toSeq], read once into a temporary table
 * of a connection held for the run, then paged by key. Hunt ids come from clients, so a
 * range after a backfill can hold millions of hunts: Postgres keeps them (spilling to disk),
 * not the worker. Paging `SELECT DISTINCT .. WHERE seq ..` by key instead costs up to a scan
 * of the range per page (measured: 20,000 hunts in 100 pages of 200 took 8 s, against
 * 0.1 s to fill this table and 30 ms to page it). Close it: it releases the connection.
 */
export async function openSeqRangeScope(pool: pg.Pool, fromSeq: number, toSeq: number, runId: string): Promise<HuntScope> {
  if (toSeq <= fromSeq && !(await failuresDue(pool))) return { total: 0, countUpTo: async () => 0, page: async () => [], close: async () => undefined };
  const client = await pool.connect();
  try {
    await client.query('DROP TABLE IF EXISTS pg_temp.reconcile_scope');
    await client.query(`CREATE TEMP TABLE reconcile_scope (hunt_id text COLLATE "C" PRIMARY KEY)`);
    // With the hunts whose last reconciliation failed and whose backoff is over, and without
    // those whose backoff is not (reconcile-failures.ts): a failing hunt still taking events
    // was tried again by every run, each try of one past the statement limit costing 10
    // minutes of a core. Its record brings it back once due (the whole hunt is recomputed).
    // Failures this run recorded stay in, so a retry of the run counts what it counted.
    const filled = await client.query(
      `INSERT INTO pg_temp.reconcile_scope
       (SELECT hunt_id FROM events WHERE seq > $1 AND seq <= $2 UNION SELECT hunt_id FROM reconcile_failures WHERE retry_after <= now())
       EXCEPT SELECT hunt_id FROM reconcile_failures WHERE retry_after > now() AND run_id <> $3`,
      [fromSeq, toSeq, runId],
    );
    await client.query('ANALYZE pg_temp.reconcile_scope');
    return {
      total: filled.rowCount ?? 0,
      async countUpTo(huntId) {
        const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_temp.reconcile_scope WHERE hunt_id <= $1', [huntId]);
        return rows[0]?.n ?? 0;
      },
      async page(after, limit) {
        const { rows } = await client.query<{ hunt_id: string; events: number }>(
          `SELECT s.hunt_id, ${SIZE_OF('s')} FROM pg_temp.reconcile_scope s WHERE s.hunt_id > $1 ORDER BY s.hunt_id LIMIT $2`,
          [after, limit],
        );
        return rows.map((r) => ({ huntId: r.hunt_id, events: r.events }));
      },
      async close() {
        await closeScope(client);
      },
    };
  } catch (err) {
    client.release(err as Error);
    throw err;
  }
}

async function failuresDue(pool: pg.Pool): Promise<boolean> {
  return ((await pool.query('SELECT 1 FROM reconcile_failures WHERE retry_after <= now() LIMIT 1')).rowCount ?? 0) > 0;
}

async function closeScope(client: pg.PoolClient): Promise<void> {
  try {
    await client.query('DROP TABLE IF EXISTS pg_temp.reconcile_scope');
  } catch (err) {
    // The connection, and its temporary table with it, is closed rather than pooled.
    client.release(err as Error);
    return;
  }
  client.release();
}

/** The sizes of given hunts (a bounded list: a job input), in the order given. */
export async function sizesOf(pool: pg.Pool, huntIds: readonly string[]): Promise<SizedHunt[]> {
  if (huntIds.length === 0) return [];
  const { rows } = await pool.query<{ hunt_id: string; events: number }>(
    `SELECT u.hunt_id, ${SIZE_OF('u')} FROM unnest($1::text[]) WITH ORDINALITY AS u(hunt_id, n) ORDER BY u.n`,
    [huntIds],
  );
  return rows.map((r) => ({ huntId: r.hunt_id, events: r.events }));
}

/**
 * Of `huntIds`, those the store has never seen: no event stored, and no live row. A reconcile
 * of them checks nothing and ends green, so it says so: most likely a mistyped id.
 */
export async function unknownHunts(pool: pg.Pool, huntIds: readonly string[]): Promise<string[]> {
  if (huntIds.length === 0) return [];
  const { rows } = await pool.query<{ hunt_id: string }>(
    `SELECT u.hunt_id FROM unnest($1::text[]) AS u(hunt_id)
      WHERE NOT EXISTS (SELECT 1 FROM hunts h WHERE h.hunt_id = u.hunt_id)
        AND NOT EXISTS (SELECT 1 FROM events e WHERE e.hunt_id = u.hunt_id)
        AND NOT EXISTS (SELECT 1 FROM player_scores p WHERE p.hunt_id = u.hunt_id)
      ORDER BY u.hunt_id`,
    [huntIds],
  );
  return rows.map((r) => r.hunt_id);
}

/** Moves the watermark forward (never back), after the hunts up to it were reconciled. */
export async function advanceReconcileWatermark(pool: pg.Pool, toSeq: number): Promise<void> {
  await pool.query(`UPDATE job_watermarks SET last_seq = GREATEST(last_seq, $2), updated_at = now() WHERE job = $1`, [RECONCILE_JOB, toSeq]);
}

/**
 * Says a run scoped by the watermark is making progress (after each group it commits),
 * without moving the watermark: a long run is not taken for a hung one
 * (hunt_batch_watermark_age_seconds, HuntScheduledJobBehind).
 */
export async function confirmReconcileProgress(pool: pg.Pool): Promise<void> {
  await pool.query(`UPDATE job_watermarks SET updated_at = now() WHERE job = $1`, [RECONCILE_JOB]);
}

/** Hunts a reconcile run has committed so far (its progress, row by row as groups commit). */
export async function countReconciledHunts(pool: pg.Pool, runId: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM reconcile_runs WHERE run_id = $1', [runId]);
  return rows[0]?.n ?? 0;
}

/** A run's totals as it committed them: one reconcile_runs row per hunt (a retry that redoes a hunt overwrites its row). */
export async function reconcileRunTotals(pool: pg.Pool, runId: string): Promise<RunTotals> {
  const { rows } = await pool.query<{ players_checked: number; players_drifted: number; treasures_changed: number; credits_drifted: number }>(
    `SELECT coalesce(sum(players_checked), 0)::float8 AS players_checked, coalesce(sum(players_drifted), 0)::float8 AS players_drifted,
            coalesce(sum(treasures_changed), 0)::float8 AS treasures_changed, coalesce(sum(credits_drifted), 0)::float8 AS credits_drifted
       FROM reconcile_runs WHERE run_id = $1`,
    [runId],
  );
  const t = rows[0];
  return {
    playersChecked: t?.players_checked ?? 0,
    playersDrifted: t?.players_drifted ?? 0,
    treasuresChanged: t?.treasures_changed ?? 0,
    creditsDrifted: t?.credits_drifted ?? 0,
  };
}

export type RunTotals = Pick<HuntReconciliation, 'playersChecked' | 'playersDrifted' | 'treasuresChanged' | 'creditsDrifted'>;

/** Rows found drifted, of a hunt or a run: players, treasure winners and clue credits. */
export const driftCount = (r: Pick<HuntReconciliation, 'playersDrifted' | 'treasuresChanged' | 'creditsDrifted'>) =>
  r.playersDrifted + r.treasuresChanged + r.creditsDrifted;

/** Anything drifted, of a hunt or a run. */
export const hasDrift = (r: Parameters<typeof driftCount>[0]) => driftCount(r) > 0;
