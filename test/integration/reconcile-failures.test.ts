/**
 * A hunt whose reconciliation fails for what it holds, on the real Postgres (the activity run
 * by MockActivityEnvironment): the run records it in reconcile_failures, reconciles the hunts
 * of its group and after it, advances the watermark and ends. Before, the step was retried
 * for ever on that hunt: no later hunt was reconciled and every scheduled run was skipped.
 * Later runs try the hunt again once its backoff is over, and the one that reconciles it
 * clears the record.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createReconcileActivities, type ReconcileActivityInput, type ReconcileCheckpoint, type ReconcileSummary } from '../../src/correctness/reconcile-job';
import type { HuntEvent } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { failingHunts, isHuntFailure } from '../../src/store/correctness/reconcile-failures';
import { useTestDatabase } from '../helpers/database-fixture';
import { applyInOneTransaction } from '../helpers/stored-events';
import { clueFound, joined } from '../helpers/event-builders';
import { projectionOf } from '../helpers/ingest';

const db = useTestDatabase();

let clock = Date.now() - 3_600_000;
function huntEvents(huntId: string): HuntEvent[] {
  return [
    joined({ eventId: `${huntId}-j`, huntId, playerId: 'ann', displayName: 'Ann', occurredAt: new Date(clock++).toISOString() }),
    clueFound({ eventId: `${huntId}-c0`, huntId, playerId: 'ann', clueId: 'c0', points: 10, occurredAt: new Date(clock++).toISOString() }),
  ];
}

const input = (runId: string, more: Partial<ReconcileActivityInput> = {}): ReconcileActivityInput => ({ runId, repair: true, huntsPerTransaction: 10, settleMs: 0, ...more });
const run = async (runId: string) => (await new MockActivityEnvironment().run(createReconcileActivities({ pool: db.pool }).reconcileHunts, input(runId))) as ReconcileSummary;
const reconciledBy = async (runId: string) =>
  (await db.pool.query<{ hunt_id: string }>('SELECT hunt_id FROM reconcile_runs WHERE run_id = $1 ORDER BY hunt_id', [runId])).rows.map((r) => r.hunt_id);
const failures = async () =>
  (await db.pool.query<{ hunt_id: string; run_id: string; attempts: number; retry_in_minutes: number }>(
    `SELECT hunt_id, run_id, attempts, round(extract(epoch FROM retry_after - now()) / 60)::int AS retry_in_minutes FROM reconcile_failures ORDER BY hunt_id`,
  )).rows;
const backoffOver = () => db.pool.query(`UPDATE reconcile_failures SET retry_after = now() - interval '1 second'`);

describe('reconcile, with a hunt that fails for what it holds', () => {
  it('records the hunt and goes on, tries it again after its backoff, and clears it once reconciled', async () => {
    const hunts = ['hunt-a', 'hunt-b', 'hunt-c'];
    const events = hunts.flatMap(huntEvents);
    await applyInOneTransaction(db.pool, events);
    // Every hunt drifted, so each run's repair writes every hunt's player row.
    await db.pool.query('UPDATE player_scores SET score = score + 1000');
    // An operator's trigger that refuses hunt-b's rows (SQLSTATE P0001), whatever is retried.
    await db.pool.query(`CREATE FUNCTION refuse_hunt_b() RETURNS trigger LANGUAGE plpgsql AS $$
                           BEGIN IF NEW.hunt_id = 'hunt-b' THEN RAISE EXCEPTION 'hunt-b is frozen'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER refuse_hunt_b BEFORE INSERT ON player_scores FOR EACH ROW EXECUTE FUNCTION refuse_hunt_b()');

    // One group of three: halved until hunt-b is alone; the others are reconciled and repaired.
    const first = await run('run-1');
    expect(first).toMatchObject({ hunts: 3, huntsFailed: 1, failed: [{ huntId: 'hunt-b', error: expect.stringMatching(/hunt-b is frozen.*SQLSTATE P0001/) }] });
    expect(first.watermark).toBeGreaterThan(0);
    expect(await reconciledBy('run-1')).toEqual(['hunt-a', 'hunt-c']);
    expect(await failures()).toEqual([{ hunt_id: 'hunt-b', run_id: 'run-1', attempts: 1, retry_in_minutes: 5 }]);
    expect(await failingHunts(db.pool)).toBe(1);
    const live = await projectionOf(db.pool);
    const expected = foldEvents(events);
    expect(live.players.filter((p) => p.huntId !== 'hunt-b')).toEqual(expected.players.filter((p) => p.huntId !== 'hunt-b'));
    expect(live.players.find((p) => p.huntId === 'hunt-b')?.score).toBe(1010); // not repaired: its repair was refused

    // Within the backoff, a run has nothing to do, even once the failing hunt takes a new
    // event (before, every run tried it again as long as it took events).
    expect((await run('run-2')).hunts).toBe(0);
    const late = clueFound({ eventId: 'hunt-b-late', huntId: 'hunt-b', playerId: 'ann', clueId: 'c-late', points: 5, occurredAt: new Date(clock++).toISOString() });
    await db.pool.query('ALTER TABLE player_scores DISABLE TRIGGER refuse_hunt_b');
    await applyInOneTransaction(db.pool, [late]);
    await db.pool.query('ALTER TABLE player_scores ENABLE TRIGGER refuse_hunt_b');
    expect((await run('run-2b')).hunts).toBe(0);
    expect(await failures()).toEqual([{ hunt_id: 'hunt-b', run_id: 'run-1', attempts: 1, retry_in_minutes: 5 }]);

    // A run that only checks writes nothing the trigger refuses: it neither clears the failure
    // nor records one (data quality's drift check runs so, over every hunt).
    const checked = (await new MockActivityEnvironment().run(createReconcileActivities({ pool: db.pool }).reconcileHunts, input('check-1', { huntIds: ['hunt-b'], repair: false }))) as ReconcileSummary;
    expect(checked).toMatchObject({ hunts: 1, huntsFailed: 0, playersDrifted: 1 });
    expect(await failures()).toEqual([{ hunt_id: 'hunt-b', run_id: 'run-1', attempts: 1, retry_in_minutes: 5 }]);

    // After it, the hunt is in the next run's scope; it fails again, and waits twice as long.
    await backoffOver();
    expect(await run('run-3')).toMatchObject({ hunts: 1, huntsFailed: 1 });
    expect(await failures()).toEqual([{ hunt_id: 'hunt-b', run_id: 'run-3', attempts: 2, retry_in_minutes: 10 }]);

    // The cause removed: the next try reconciles and repairs it, and clears its record.
    await db.pool.query('DROP TRIGGER refuse_hunt_b ON player_scores');
    await backoffOver();
    expect(await run('run-4')).toMatchObject({ hunts: 1, huntsFailed: 0, failed: [] });
    expect(await reconciledBy('run-4')).toEqual(['hunt-b']);
    expect(await failures()).toEqual([]);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...events, late]));

    // A run that only checks records a hunt that fails in it too: over the watermark it moves
    // past the hunt like any run, and only the record brings the hunt back.
    await db.pool.query(`CREATE FUNCTION refuse_run_of_hunt_c() RETURNS trigger LANGUAGE plpgsql AS $$
                           BEGIN IF NEW.hunt_id = 'hunt-c' THEN RAISE EXCEPTION 'hunt-c is not to be reported'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER refuse_run_of_hunt_c BEFORE INSERT ON reconcile_runs FOR EACH ROW EXECUTE FUNCTION refuse_run_of_hunt_c()');
    const checkOnly = (await new MockActivityEnvironment().run(createReconcileActivities({ pool: db.pool }).reconcileHunts, input('check-2', { huntIds: ['hunt-a', 'hunt-c'], repair: false }))) as ReconcileSummary;
    expect(checkOnly).toMatchObject({ hunts: 2, huntsFailed: 1, failed: [{ huntId: 'hunt-c' }] });
    expect(await failures()).toEqual([{ hunt_id: 'hunt-c', run_id: 'check-2', attempts: 1, retry_in_minutes: 5 }]);
    // Failing again in a run that only checks, it keeps the record and the backoff the
    // repairing runs set: a nightly check must not push their next try back.
    await db.pool.query(`UPDATE reconcile_failures SET retry_after = now() + interval '3 minutes'`);
    await new MockActivityEnvironment().run(createReconcileActivities({ pool: db.pool }).reconcileHunts, input('check-3', { huntIds: ['hunt-c'], repair: false }));
    expect(await failures()).toEqual([{ hunt_id: 'hunt-c', run_id: 'check-2', attempts: 1, retry_in_minutes: 3 }]);
  });

  it('splits a group that hit the statement limit into single hunts, moving the cursor after each', async () => {
    const hunts = ['slow-a', 'slow-b', 'slow-c', 'slow-d'];
    const events = hunts.flatMap(huntEvents);
    await applyInOneTransaction(db.pool, events);
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE hunt_id LIKE 'slow-%'`);
    // What the step's statement limit raises, for slow-c's rows alone.
    await db.pool.query(`CREATE FUNCTION time_out_slow_c() RETURNS trigger LANGUAGE plpgsql AS $$
                           BEGIN IF NEW.hunt_id = 'slow-c' THEN RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER time_out_slow_c BEFORE INSERT ON player_scores FOR EACH ROW EXECUTE FUNCTION time_out_slow_c()');
    try {
      const env = new MockActivityEnvironment();
      const cursors: (string | undefined)[] = [];
      env.on('heartbeat', (details: ReconcileCheckpoint) => {
        if (cursors.at(-1) !== details.lastHuntDone) cursors.push(details.lastHuntDone);
      });
      const summary = (await env.run(createReconcileActivities({ pool: db.pool }).reconcileHunts, input('slow-1', { huntIds: hunts }))) as ReconcileSummary;
      expect(summary).toMatchObject({ hunts: 4, huntsFailed: 1, failed: [{ huntId: 'slow-c', error: expect.stringMatching(/SQLSTATE 57014/) }] });
      // Halving would have gone [a, b] then [c], [d]; each alone, every hunt moves the cursor.
      expect(cursors).toEqual(['slow-a', 'slow-b', 'slow-c', 'slow-d']);
      expect(await reconciledBy('slow-1')).toEqual(['slow-a', 'slow-b', 'slow-d']);
      expect((await failures()).map((f) => f.hunt_id)).toContain('slow-c');
    } finally {
      await db.pool.query('DROP TRIGGER time_out_slow_c ON player_scores');
    }
  });

  it('tells failures of the hunts from failures of the database, which the step retries', () => {
    const pgError = (code: string) => Object.assign(new Error('x'), { code });
    for (const code of ['22003', '23514', 'P0001', '54000', '57014', '53400']) expect(isHuntFailure(pgError(code)), code).toBe(true);
    for (const code of ['08006', '40P01', '40001', '55P03', '57P01', '53100', '42P01']) expect(isHuntFailure(pgError(code)), code).toBe(false);
    expect(isHuntFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(false);
  });
});
