/**
 * A reconcile of a large hunt recomputes it without holding its fence: the hot path keeps
 * committing the hunt's events meanwhile (before, every lane with the hunt waited for the
 * whole run: 8 s for a hunt of 2M events, on every run of the schedule), and the events
 * committed during the recomputation are merged in under the fence, so the repair keeps them.
 * The reprocess fence (a table lock on `hunts`) still waits for the whole run.
 *
 * The comparison of every row runs outside the fence too (projection-diff.ts); under it only
 * the keys that differed, and those the events committed since touch, are compared again.
 */
import { describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { reconcileHunts } from '../../src/store/correctness/reconcile';
import { LIVE_PROJECTION_TABLES, recomputeInto } from '../../src/store/batch/recompute';
import { withTransaction } from '../../src/store/transaction';
import { applyEvents, lockHuntFences } from '../../src/store/hot-path/apply-events';
import { parseOccurredAt } from '../../src/events/schema';
import { useTestDatabase } from '../helpers/database-fixture';
import { applyInOneTransaction } from '../helpers/stored-events';
import { clueFound, treasureClaimed } from '../helpers/event-builders';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();
const EVENTS = 300_000;

const commitHotPath = (events: HuntEvent[]) =>
  applyInOneTransaction(db.pool, events, 'hot');

/** Rows of the live projections that a from-scratch recomputation of every event does not have, and the reverse. */
async function differencesFromScratch(): Promise<number> {
  return withTransaction(db.pool, async (client) => {
    const scratch = { players: 'scratch_players', clueCredits: 'scratch_credits', treasureWinners: 'scratch_winners' };
    const pairs = [
      [scratch.players, LIVE_PROJECTION_TABLES.players],
      [scratch.clueCredits, LIVE_PROJECTION_TABLES.clueCredits],
      [scratch.treasureWinners, LIVE_PROJECTION_TABLES.treasureWinners],
    ];
    for (const [table, live] of pairs) await client.query(`CREATE TEMP TABLE ${table} (LIKE ${live} INCLUDING ALL) ON COMMIT DROP`);
    await recomputeInto(client, scratch);
    let differences = 0;
    for (const [table, live] of pairs) {
      const { rows } = await client.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM (SELECT * FROM ${live} EXCEPT SELECT * FROM ${table}) a)::int
              + (SELECT count(*) FROM (SELECT * FROM ${table} EXCEPT SELECT * FROM ${live}) b)::int AS n`,
      );
      differences += rows[0]?.n ?? 0;
    }
    return differences;
  });
}

/** A hunt of EVENTS clue events over 3,000 players, stored raw, with live projections built by a first reconcile. */
async function bigHunt(huntId: string): Promise<void> {
  await db.pool.query(`INSERT INTO hunts (hunt_id) VALUES ($1)`, [huntId]);
  await db.pool.query(
    `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source)
     SELECT $2 || '-e' || g, $2, 'p' || (g % 3000), 'clue.found', timestamptz '2026-11-01T00:00:00Z' + g * interval '1 ms',
            jsonb_build_object('clueId', 'c' || (g % 40), 'points', 1 + g % 20), 'setup' FROM generate_series(1, $1::int) g`,
    [EVENTS, huntId],
  );
  await db.pool.query(`UPDATE hunts SET events_applied = $1 WHERE hunt_id = $2`, [EVENTS, huntId]);
  await db.pool.query('ANALYZE');
  await reconcileHunts(db.pool, [huntId], `setup-${huntId}`, true);
}

/** Waits until a statement of the reconcile matching `query` (a LIKE pattern) runs, or waits for a lock when `lock`. */
function reconcileReaches(what: string, query: string, lock = false) {
  return waitFor(
    what,
    async () => {
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'active' AND query LIKE $1 AND ($2::bool IS FALSE OR wait_event_type = 'Lock')`,
        [query, lock],
      );
      return rows[0]!.n > 0;
    },
    { timeoutMs: 30_000, intervalMs: 10 },
  );
}

describe('a reconcile of a large hunt', () => {
  it('lets the hot path commit the hunt while it recomputes, and keeps what was committed meanwhile', async () => {
    await bigHunt('big');

    let reconcileDone = false;
    const reconcile = reconcileHunts(db.pool, ['big'], 'under-test', true).then((results) => {
      reconcileDone = true;
      return results;
    });
    await reconcileReaches('the reconcile to be recomputing the hunt', 'WITH inserted AS (INSERT INTO "final_%');
    // Committed while the recomputation runs: a new clue for p1, and a claim of a treasure
    // earlier than any other (so its winner and p1's total change).
    await commitHotPath([
      clueFound({ eventId: 'hot-1', huntId: 'big', playerId: 'p1', clueId: 'fresh', points: 7, occurredAt: '2026-11-01T00:00:00.5Z' }),
      treasureClaimed({ eventId: 'hot-2', huntId: 'big', playerId: 'p1', treasureId: 't1', points: 100, occurredAt: '2026-11-01T00:00:00.6Z' }),
    ]);
    expect(reconcileDone).toBe(false);
    // The reprocess fence cannot enter mid-run (it would drop the tables the run reads).
    await expect(withTransaction(db.pool, (client) => client.query('LOCK TABLE hunts IN EXCLUSIVE MODE NOWAIT'))).rejects.toMatchObject({ code: '55P03' });
    expect(reconcileDone).toBe(false);

    const [result] = await reconcile;
    expect(result).toMatchObject({ huntId: 'big', playersChecked: 3000, playersDrifted: 0, treasuresChanged: 0 });
    // The repair kept the events committed during the run: live equals a recomputation of every event.
    expect(await differencesFromScratch()).toBe(0);
    const { rows } = await db.pool.query(`SELECT treasure_id, player_id FROM treasure_winners WHERE hunt_id = 'big'`);
    expect(rows).toEqual([{ treasure_id: 't1', player_id: 'p1' }]);
  });
});

describe('a reconcile comparing outside the fence', () => {
  it('finds what the events committed after its comparison change, a winner their merge displaces included', async () => {
    await bigHunt('mid');
    // Treasure t1 is p2's; p7's total drifts before the run.
    await applyInOneTransaction(db.pool, [
      treasureClaimed({ eventId: 'claim-p2', huntId: 'mid', playerId: 'p2', treasureId: 't1', points: 100, occurredAt: '2026-11-01T00:00:10Z' }),
    ]);
    await db.pool.query(`UPDATE player_scores SET score = score + 1 WHERE hunt_id = 'mid' AND player_id = 'p7'`);

    const reconcile = reconcileHunts(db.pool, ['mid'], 'under-test', true);
    await reconcileReaches('the reconcile to be recomputing the hunt', 'WITH inserted AS (INSERT INTO "final_%');
    // A hot-path transaction takes the fence after the run read its covered seq, and commits
    // only once the run waits for the fence: after its comparison of every row. It holds
    // p1's earlier claim of t1 (the hot path keeps p2, the first stored; the merge makes p1
    // the winner and takes t1's points from p2, whom no new event names) and a clue for p3.
    const hot = await db.pool.connect();
    try {
      await hot.query('BEGIN');
      await lockHuntFences(hot, ['mid']);
      const events = [
        treasureClaimed({ eventId: 'claim-p1', huntId: 'mid', playerId: 'p1', treasureId: 't1', points: 100, occurredAt: '2026-11-01T00:00:05Z' }),
        clueFound({ eventId: 'clue-p3', huntId: 'mid', playerId: 'p3', clueId: 'fresh', points: 7, occurredAt: '2026-11-01T00:00:06Z' }),
      ];
      await applyEvents(hot, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'hot' })));
      await reconcileWaitsForALock();
      await hot.query('COMMIT');
    } finally {
      hot.release();
    }

    const [result] = await reconcile;
    expect(result).toMatchObject({ huntId: 'mid', playersChecked: 3000, playersDrifted: 3, treasuresChanged: 1 });
    const { rows: drift } = await db.pool.query(`SELECT kind, subject_id FROM reconcile_drift WHERE run_id = 'under-test' ORDER BY kind, subject_id`);
    expect(drift).toEqual([
      { kind: 'player', subject_id: 'p1' },
      { kind: 'player', subject_id: 'p2' },
      { kind: 'player', subject_id: 'p7' },
      { kind: 'treasure', subject_id: 't1' },
    ]);
    expect(await differencesFromScratch()).toBe(0);
  });
});

describe('a reconcile naming a hunt that has no row in hunts yet', () => {
  it('holds its later transactions back too, so its repair overwrites none of them', async () => {
    await bigHunt('ballast');
    const playerOf = async () =>
      (await db.pool.query(`SELECT score::int, clues_found FROM player_scores WHERE hunt_id = 'newborn' AND player_id = 'p1'`)).rows[0];
    const reconcile = reconcileHunts(db.pool, ['ballast', 'newborn'], 'newborn-run', true);
    await reconcileReaches('the reconcile to be recomputing', 'WITH inserted AS (INSERT INTO "final_%');
    // A hot-path commit of the ballast hunt in flight: the run's fence waits for it.
    const ballast = await db.pool.connect();
    const second = await db.pool.connect();
    try {
      await ballast.query('BEGIN');
      await lockHuntFences(ballast, ['ballast']);
      await reconcileWaitsForALock();
      // Meanwhile the new hunt's first transaction commits (its later find arrives first: the
      // rules credit the earlier one), and a second one is in flight when ballast's ends.
      await applyInOneTransaction(db.pool, [
        clueFound({ eventId: 'nb-later', huntId: 'newborn', playerId: 'p1', clueId: 'c1', points: 20, occurredAt: '2026-11-01T00:00:20Z' }),
        clueFound({ eventId: 'nb-earlier', huntId: 'newborn', playerId: 'p1', clueId: 'c1', points: 10, occurredAt: '2026-11-01T00:00:10Z' }),
      ]);
      await second.query('BEGIN');
      const more = [clueFound({ eventId: 'nb-second', huntId: 'newborn', playerId: 'p1', clueId: 'c2', points: 5, occurredAt: '2026-11-01T00:00:30Z' })];
      await applyEvents(second, more.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'hot' })));
      await ballast.query('COMMIT');
      // The run waits for the second transaction now: at the new hunt's fence, or (before,
      // when the fence missed a row made after its statement began) at the repair of p1.
      await reconcileWaitsForALock();
      await second.query('COMMIT');
    } finally {
      ballast.release();
      second.release();
    }
    const results = await reconcile;
    expect(results.map((r) => [r.huntId, r.playersDrifted])).toEqual([['ballast', 0], ['newborn', 1]]);
    // Every event of the new hunt counted by the rules: 10 for c1 (the earlier find), 5 for c2.
    // Before, the repair wrote over the second commit: 10 and one clue.
    expect(await playerOf()).toEqual({ score: 15, clues_found: 2 });
    expect(await differencesFromScratch()).toBe(0);
  });
});

/** Waits until a statement of the reconcile waits for a row or table lock. */
function reconcileWaitsForALock() {
  return waitFor(
    'the reconcile to wait for a lock',
    async () => {
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'active' AND wait_event_type = 'Lock'
            AND (query LIKE '%FOR UPDATE' OR query LIKE '%INSERT INTO hunts%' OR query LIKE 'DELETE FROM player_scores%')`,
      );
      return rows[0]!.n > 0;
    },
    { timeoutMs: 30_000, intervalMs: 10 },
  );
}
