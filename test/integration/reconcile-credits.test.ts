/**
 * Clue-credit drift is recorded and reported, not only repaired: a credit can differ where no
 * player total does (an earlier find of a clue worth the same points, stored after a later
 * one), and a run that only checks said "no drift" while clue_credits differed.
 */
import { describe, expect, it } from 'vitest';
import { reconcileHunts, reconcileRunTotals } from '../../src/store/correctness/reconcile';
import { driftedRuns, lastRunDrift } from '../../src/store/read/monitoring';
import { useTestDatabase } from '../helpers/database-fixture';
import { applyInOneTransaction } from '../helpers/stored-events';
import { atSecond, clueFound, joined } from '../helpers/event-builders';

const db = useTestDatabase();

const credit = async () =>
  (await db.pool.query(`SELECT event_id, points FROM clue_credits WHERE hunt_id = 'h1' AND player_id = 'ann' AND clue_id = 'c1'`)).rows;

describe('reconcile of clue credits', () => {
  it('records and counts a credit that differs where no total does, in a run that only checks too', async () => {
    // The later find arrives first: the hot path credits it; the rules credit the earlier one, worth the same.
    await applyInOneTransaction(db.pool, [
      joined({ eventId: 'j', huntId: 'h1', playerId: 'ann', occurredAt: atSecond(0) }),
      clueFound({ eventId: 'later', huntId: 'h1', playerId: 'ann', clueId: 'c1', points: 10, occurredAt: atSecond(20) }),
    ]);
    await applyInOneTransaction(db.pool, [clueFound({ eventId: 'earlier', huntId: 'h1', playerId: 'ann', clueId: 'c1', points: 10, occurredAt: atSecond(10) })]);
    expect(await credit()).toEqual([{ event_id: 'later', points: 10 }]);

    const [checked] = await reconcileHunts(db.pool, ['h1'], 'check', false);
    expect(checked).toMatchObject({ playersDrifted: 0, treasuresChanged: 0, creditsDrifted: 1, repaired: false });
    expect(await reconcileRunTotals(db.pool, 'check')).toMatchObject({ playersDrifted: 0, creditsDrifted: 1 });
    const { rows: drift } = await db.pool.query(`SELECT kind, subject_id, live, final FROM reconcile_drift WHERE run_id = 'check'`);
    expect(drift).toEqual([
      {
        kind: 'credit',
        subject_id: 'ann/c1/found',
        live: { eventId: 'later', occurredAt: atSecond(20).replace('.000Z', '+00:00'), points: 10 },
        final: { eventId: 'earlier', occurredAt: atSecond(10).replace('.000Z', '+00:00'), points: 10 },
      },
    ]);
    expect(await lastRunDrift(db.pool)).toEqual({ player: 0, treasure: 0, credit: 1 });
    expect(await driftedRuns(db.pool, 30)).toEqual({ player: 0, treasure: 0, credit: 1 });
    expect(await credit()).toEqual([{ event_id: 'later', points: 10 }]);

    const [repaired] = await reconcileHunts(db.pool, ['h1'], 'repair', true);
    expect(repaired).toMatchObject({ creditsDrifted: 1, repaired: true });
    expect(await credit()).toEqual([{ event_id: 'earlier', points: 10 }]);
    const [after] = await reconcileHunts(db.pool, ['h1'], 'after', false);
    expect(after).toMatchObject({ playersDrifted: 0, treasuresChanged: 0, creditsDrifted: 0 });
  });
});
