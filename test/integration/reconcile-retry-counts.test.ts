/**
 * A reconcile attempt that dies after a group committed but before its heartbeat said so:
 * the retry redoes that group, finds its drift already repaired (or already recorded), and
 * must still report, and keep recorded, the drift the first attempt found. Real Postgres;
 * MockActivityEnvironment runs the real activity with the retry's heartbeat details.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createReconcileActivities, type ReconcileCheckpoint, type ReconcileSummary } from '../../src/correctness/reconcile-job';
import type { HuntEvent } from '../../src/events/schema';
import { parseOccurredAt } from '../../src/events/schema';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound, joined } from '../helpers/event-builders';

const db = useTestDatabase();

let clock = Date.now() - 3_600_000;
function huntEvents(huntId: string): HuntEvent[] {
  return [
    joined({ eventId: `${huntId}-j`, huntId, playerId: 'ann', displayName: 'Ann', occurredAt: new Date(clock++).toISOString() }),
    clueFound({ eventId: `${huntId}-c1`, huntId, playerId: 'ann', clueId: 'c1', points: 10, occurredAt: new Date(clock++).toISOString() }),
    clueFound({ eventId: `${huntId}-c2`, huntId, playerId: 'bob', clueId: 'c2', points: 20, occurredAt: new Date(clock++).toISOString() }),
  ];
}

/** Stores the hunts' events, then corrupts every live score: two drifted players per hunt. */
async function storeCorrupted(huntIds: string[]): Promise<void> {
  const events = huntIds.flatMap(huntEvents);
  await withTransaction(db.pool, (client) => applyEvents(client, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }))));
  await db.pool.query('UPDATE player_scores SET score = score + 1000 WHERE hunt_id = ANY($1::text[])', [huntIds]);
}

const recorded = async (runId: string) =>
  (await db.pool.query('SELECT hunt_id, players_drifted FROM reconcile_runs WHERE run_id = $1 ORDER BY hunt_id', [runId])).rows;

describe('reconcile, retried after a group committed unannounced', () => {
  for (const repair of [true, false]) {
    it(`keeps the drift the first attempt found (repair: ${repair})`, async () => {
      const runId = `run-${repair ? 'repair' : 'check'}`;
      const hunts = repair ? ['hunt-a', 'hunt-b'] : ['hunt-c', 'hunt-d'];
      await storeCorrupted(hunts);
      const { reconcileHunts } = createReconcileActivities({ pool: db.pool });
      const input = { runId, huntIds: hunts, repair, huntsPerTransaction: 1, settleMs: 0 };

      // Attempt 1 dies as it heartbeats its first group's commit: the last heartbeat the
      // server holds is the one from before that group (details serialized when sent).
      const attempt1 = new MockActivityEnvironment();
      let lastDelivered: ReconcileCheckpoint | undefined;
      attempt1.on('heartbeat', (details: ReconcileCheckpoint) => {
        if (details.lastHuntDone !== undefined) throw new Error('worker killed');
        lastDelivered = structuredClone(details);
      });
      await expect(attempt1.run(reconcileHunts, input)).rejects.toThrow('worker killed');
      expect(lastDelivered?.lastHuntDone).toBeUndefined();
      expect(await recorded(runId)).toEqual([{ hunt_id: hunts[0], players_drifted: 2 }]);

      const attempt2 = new MockActivityEnvironment({ heartbeatDetails: lastDelivered, attempt: 2 });
      const summary = (await attempt2.run(reconcileHunts, input)) as ReconcileSummary;
      expect(summary.playersDrifted).toBe(4);
      expect(summary.drifted.map((d) => [d.huntId, d.playersDrifted])).toEqual(hunts.map((h) => [h, 2]));
      expect(await recorded(runId)).toEqual(hunts.map((h) => ({ hunt_id: h, players_drifted: 2 })));
    });
  }
});
