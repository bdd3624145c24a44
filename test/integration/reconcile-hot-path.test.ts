/**
 * A reconcile of a large hunt recomputes it without holding its fence: the hot path keeps
 * committing the hunt's events meanwhile (before, every lane with the hunt waited for the
 * whole run: 8 s for a hunt of 2M events, on every run of the schedule), and the events
 * committed during the recomputation are merged in under the fence, so the repair keeps them.
 * The reprocess fence (a table lock on `hunts`) still waits for the whole run.
 */
import { describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { reconcileHunts } from '../../src/store/correctness/reconcile';
import { LIVE_PROJECTION_TABLES, recomputeInto } from '../../src/store/batch/recompute';
import { withTransaction } from '../../src/store/transaction';
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

describe('a reconcile of a large hunt', () => {
  it('lets the hot path commit the hunt while it recomputes, and keeps what was committed meanwhile', async () => {
    await db.pool.query(`INSERT INTO hunts (hunt_id) VALUES ('big')`);
    await db.pool.query(
      `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source)
       SELECT 'e' || g, 'big', 'p' || (g % 3000), 'clue.found', timestamptz '2026-11-01T00:00:00Z' + g * interval '1 ms',
              jsonb_build_object('clueId', 'c' || (g % 40), 'points', 1 + g % 20), 'setup' FROM generate_series(1, $1::int) g`,
      [EVENTS],
    );
    await db.pool.query(`UPDATE hunts SET events_applied = $1 WHERE hunt_id = 'big'`, [EVENTS]);
    await db.pool.query('ANALYZE');
    await reconcileHunts(db.pool, ['big'], 'setup', true); // live projections from the raw events

    let reconcileDone = false;
    const reconcile = reconcileHunts(db.pool, ['big'], 'under-test', true).then((results) => {
      reconcileDone = true;
      return results;
    });
    await waitFor(
      'the reconcile to be recomputing the hunt',
      async () => {
        const { rows } = await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE 'INSERT INTO "final_%'`,
        );
        return rows[0]!.n > 0;
      },
      { timeoutMs: 30_000, intervalMs: 10 },
    );
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
