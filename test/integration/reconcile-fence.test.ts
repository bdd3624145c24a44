/**
 * DESIGN invariant 6, made deterministic: a hot-path transaction holds an increment of
 * hunt H uncommitted while a repair of H starts. The repair must wait for it (the per-hunt
 * fence) and include it; without the fence the repair would recompute without the event and
 * then overwrite the row the increment landed in.
 */
import { describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { parseOccurredAt } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { reconcileHunts } from '../../src/store/correctness/reconcile';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { projectionOf } from '../helpers/ingest';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();

const accepted = (events: HuntEvent[]) => events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }));

/** Until a backend of this database waits on a lock `pid` holds, as Postgres itself shows it (no sleep). */
async function waitBlockedBy(pid: number, what: string): Promise<void> {
  await waitFor(what, async () => {
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND $1::int = ANY(pg_blocking_pids(pid))`,
      [pid],
    );
    return rows[0]!.n > 0;
  }, { timeoutMs: 10_000, intervalMs: 20 });
}

describe('the per-hunt fence', () => {
  it('makes a repair wait for an in-flight increment and keep it', async () => {
    const first = clueFound({ eventId: 'e1', huntId: 'h', playerId: 'p', clueId: 'c1', points: 10, occurredAt: '2026-11-20T10:00:00Z' });
    const second = clueFound({ eventId: 'e2', huntId: 'h', playerId: 'p', clueId: 'c2', points: 5, occurredAt: '2026-11-20T10:00:01Z' });
    await withTransaction(db.pool, (setup) => applyEvents(setup, accepted([first])));

    // The hot path's transaction for `second`: applied, not yet committed.
    const hotPath = await db.pool.connect();
    await hotPath.query('BEGIN');
    await applyEvents(hotPath, accepted([second]));
    const hotPathPid = (await hotPath.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

    let repairDone = false;
    const repair = reconcileHunts(db.pool, ['h'], 'fence-test', true).then((r) => {
      repairDone = true;
      return r;
    });
    // Blocked, as Postgres itself shows it (no sleep): a backend of this database waits on a
    // lock held by the hot path's open transaction. The fence is what it waits on first.
    await waitBlockedBy(hotPathPid, "the repair to wait on the hot path's fence lock");
    expect(repairDone).toBe(false); // waiting at the fence
    await hotPath.query('COMMIT');
    hotPath.release();
    await repair;

    expect(await projectionOf(db.pool)).toEqual(foldEvents([first, second]));
    expect((await projectionOf(db.pool)).players[0]?.score).toBe(15);
  });

  it("makes a repair wait for a hunt's first transaction too, whose fence row is not committed yet", async () => {
    const opening = clueFound({ eventId: 'n1', huntId: 'new-hunt', playerId: 'q', clueId: 'c1', points: 4, occurredAt: '2026-11-20T11:00:00Z' });
    const hotPath = await db.pool.connect();
    await hotPath.query('BEGIN');
    await applyEvents(hotPath, accepted([opening])); // inserts the hunt's fence row, uncommitted
    const hotPathPid = (await hotPath.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

    const repair = reconcileHunts(db.pool, ['new-hunt'], 'fence-test-new', true);
    try {
      // `FOR UPDATE` does not see a row another transaction has not committed, and would not wait.
      await waitBlockedBy(hotPathPid, "the repair to wait on the new hunt's first transaction");
    } finally {
      await hotPath.query('COMMIT');
      hotPath.release();
    }

    expect(await repair).toMatchObject([{ huntId: 'new-hunt', playersChecked: 1, playersDrifted: 0 }]);
    const { rows } = await db.pool.query(`SELECT player_id, score FROM player_scores WHERE hunt_id = 'new-hunt'`);
    expect(rows).toEqual([{ player_id: 'q', score: 4 }]);
  });
});
