/**
 * dataQuality's score-drift check across runs, on the real Postgres (the activity under
 * MockActivityEnvironment, with the workflow run it would have): a run started again under a
 * workflow id reused from the Web UI does not report the earlier run's drift, and a hunt that
 * cannot be recomputed is a finding, recorded in reconcile_failures, instead of failing the
 * check (and every check after it) on every run.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createDataQualityActivities } from '../../src/correctness/data-quality-job';
import type { HuntEvent } from '../../src/events/schema';
import { CHECKS, runDataQuality, type CheckReport } from '../../src/store/correctness/data-quality';
import { failingHunts } from '../../src/store/correctness/reconcile-failures';
import { reconcileHunts } from '../../src/store/correctness/reconcile';
import { driftedRuns, lastRunDrift, recentDrift } from '../../src/store/read/monitoring';
import { useTestDatabase } from '../helpers/database-fixture';
import { atSecond, clueFound, joined } from '../helpers/event-builders';
import { applyInOneTransaction } from '../helpers/stored-events';

const db = useTestDatabase();

function huntEvents(huntId: string): HuntEvent[] {
  return [
    joined({ eventId: `${huntId}-j`, huntId, playerId: 'ann', displayName: 'Ann', occurredAt: atSecond(1) }),
    clueFound({ eventId: `${huntId}-c1`, huntId, playerId: 'ann', clueId: 'c1', points: 10, occurredAt: atSecond(2) }),
  ];
}

/** One run of the dataQuality activity, as the workflow `workflowId`'s run `runId` would run it. */
async function dataQualityRun(workflowId: string, runId: string): Promise<Record<string, CheckReport>> {
  const env = new MockActivityEnvironment({ workflowExecution: { workflowId, runId } });
  const { runDataQualityChecks } = createDataQualityActivities({ pool: db.pool });
  const reports = (await env.run(runDataQualityChecks, { runId: workflowId, repair: false })) as CheckReport[];
  return Object.fromEntries(reports.map((r) => [r.check, r]));
}

describe('dataQuality score_drift', () => {
  it('reports only its own run drift when started again under the same workflow id', async () => {
    await applyInOneTransaction(db.pool, huntEvents('reused'));
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE hunt_id = 'reused'`);

    const first = await dataQualityRun('dq-manual', 'run-1');
    expect(first.score_drift?.count).toBe(1);
    // Repaired meanwhile (a scheduled reconcile).
    await reconcileHunts(db.pool, ['reused'], 'reconcile-meanwhile', true);

    const second = await dataQualityRun('dq-manual', 'run-2');
    expect(second.score_drift).toMatchObject({ count: 0, samples: [] });
    await db.pool.query(`DELETE FROM events WHERE hunt_id = 'reused'`);
    await db.pool.query(`DELETE FROM player_scores WHERE hunt_id = 'reused'`);
    await db.pool.query(`DELETE FROM hunts WHERE hunt_id = 'reused'`);
  });

  it("stays out of reconcile's drift figures: a late claim the scheduled run mends is one drifted run, however many checks met it", async () => {
    await db.pool.query('DELETE FROM reconcile_runs'); // the earlier tests' runs
    await applyInOneTransaction(db.pool, huntEvents('late'));
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE hunt_id = 'late'`);
    // The nightly check meets the drift first, then a repairing data-quality run (the runbook's), then the scheduled reconcile.
    expect((await dataQualityRun('dq-nightly-late', 'run-1')).score_drift?.count).toBe(1);
    await runDataQuality(db.pool, 'dq-repairing-late', true);
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE hunt_id = 'late'`);
    await reconcileHunts(db.pool, ['late'], 'scheduled-late', true);
    await dataQualityRun('dq-after-late', 'run-1');

    expect(await driftedRuns(db.pool, 30)).toEqual({ player: 1, treasure: 0, credit: 0 });
    // The newest reconcile run, not the data-quality run after it (which found nothing left).
    expect(await lastRunDrift(db.pool)).toEqual({ player: 1, treasure: 0, credit: 0 });
    expect(await recentDrift(db.pool, 24)).toEqual({ player: 1, treasure: 0, credit: 0 });
    for (const table of ['events', 'player_scores', 'clue_credits', 'hunts', 'reconcile_runs', 'reconcile_drift']) await db.pool.query(`DELETE FROM ${table}`);
  });

  it('counts a hunt it cannot recompute as a finding, records it, and goes on with the other hunts and checks', async () => {
    await applyInOneTransaction(db.pool, ['fine-a', 'stuck', 'fine-z'].flatMap(huntEvents));
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE hunt_id = 'fine-z'`);
    // What a hunt's recomputation may meet whatever is retried (as reconcile-failures does it).
    await db.pool.query(`CREATE FUNCTION refuse_stuck() RETURNS trigger LANGUAGE plpgsql AS $$
                           BEGIN IF NEW.hunt_id = 'stuck' THEN RAISE EXCEPTION 'stuck cannot be recomputed'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER refuse_stuck BEFORE INSERT ON reconcile_runs FOR EACH ROW EXECUTE FUNCTION refuse_stuck()');

    const reports = await dataQualityRun('dq-nightly', 'run-1');
    expect(Object.keys(reports)).toEqual(CHECKS.map((c) => c.name));
    // fine-z's drifted player, and the hunt that could not be checked.
    expect(reports.score_drift?.count).toBe(2);
    expect(reports.score_drift?.samples).toEqual(
      expect.arrayContaining([
        { hunt_id: 'stuck', kind: 'reconcile_failed', error: expect.stringMatching(/stuck cannot be recomputed.*SQLSTATE P0001/) },
        expect.objectContaining({ hunt_id: 'fine-z', subject_id: 'ann' }),
      ]),
    );
    expect(await failingHunts(db.pool)).toBe(1);
    const { rows } = await db.pool.query<{ hunt_id: string }>('SELECT hunt_id FROM reconcile_failures');
    expect(rows).toEqual([{ hunt_id: 'stuck' }]);

    // The next night, within the hunt's backoff, it is not recomputed (with the cause gone it
    // would pass): still a finding, and the record (the repairing runs' backoff) is left as it is.
    await db.pool.query('DROP TRIGGER refuse_stuck ON reconcile_runs');
    const before = (await db.pool.query('SELECT attempts, retry_after, run_id FROM reconcile_failures')).rows;
    const next = await dataQualityRun('dq-nightly', 'run-2');
    expect(next.score_drift?.count).toBe(2);
    expect(next.score_drift?.samples).toContainEqual({ hunt_id: 'stuck', kind: 'reconcile_failed', error: expect.stringMatching(/stuck cannot be recomputed/) });
    expect((await db.pool.query('SELECT attempts, retry_after, run_id FROM reconcile_failures')).rows).toEqual(before);
    await db.pool.query(`DELETE FROM reconcile_failures`);
    await db.pool.query(`UPDATE player_scores SET score = score - 1000 WHERE hunt_id = 'fine-z'`);
  });

  it('saves its progress after each hunt split from a group that hit the statement limit', async () => {
    await applyInOneTransaction(db.pool, ['split-a', 'split-slow', 'split-z'].flatMap(huntEvents));
    await db.pool.query(`CREATE FUNCTION time_out_split_slow() RETURNS trigger LANGUAGE plpgsql AS $$
                           BEGIN IF NEW.hunt_id = 'split-slow' THEN RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER time_out_split_slow BEFORE INSERT ON reconcile_runs FOR EACH ROW EXECUTE FUNCTION time_out_split_slow()');
    try {
      const saved: string[] = [];
      await runDataQuality(db.pool, 'dq-split', false, undefined, {
        checkpoint: (c) => {
          if (c.partial?.check === 'score_drift' && c.partial.afterHunt.startsWith('split-')) saved.push(c.partial.afterHunt);
        },
      });
      // Each hunt alone after the split, each saved: a retry never pays the slow one's wait twice.
      expect(saved).toEqual(['split-a', 'split-slow', 'split-z']);
    } finally {
      await db.pool.query('DROP TRIGGER time_out_split_slow ON reconcile_runs');
      await db.pool.query(`DELETE FROM reconcile_failures`);
    }
  });

  it('reports a hunt whose repair the database refuses, and repairs the others', async () => {
    await applyInOneTransaction(db.pool, ['fixme', 'fixable'].flatMap(huntEvents));
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE hunt_id IN ('fixme', 'fixable')`);
    await db.pool.query(`CREATE FUNCTION refuse_fixme() RETURNS trigger LANGUAGE plpgsql AS $$
                           BEGIN IF NEW.hunt_id = 'fixme' THEN RAISE EXCEPTION 'fixme is frozen'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER refuse_fixme BEFORE INSERT OR UPDATE ON player_scores FOR EACH ROW EXECUTE FUNCTION refuse_fixme()');
    try {
      const env = new MockActivityEnvironment({ workflowExecution: { workflowId: 'dq-repair', runId: 'run-1' } });
      const reports = (await env.run(createDataQualityActivities({ pool: db.pool }).runDataQualityChecks, { runId: 'dq-repair', repair: true })) as CheckReport[];
      const drift = reports.find((r) => r.check === 'score_drift');
      expect(drift).toMatchObject({ count: 2, repaired: { huntsReconciled: 1, playersRepaired: 1, huntsFailed: 1 } });
      expect(drift?.samples).toContainEqual({ hunt_id: 'fixme', kind: 'repair_failed', error: expect.stringMatching(/fixme is frozen.*SQLSTATE P0001/) });
      const live = await db.pool.query(`SELECT hunt_id, score FROM player_scores WHERE hunt_id IN ('fixme', 'fixable') ORDER BY hunt_id`);
      expect(live.rows).toEqual([{ hunt_id: 'fixable', score: 10 }, { hunt_id: 'fixme', score: 1010 }]);
    } finally {
      await db.pool.query('DROP TRIGGER refuse_fixme ON player_scores');
    }
  });

  it('keeps at most five samples when a refused repair adds its own, so the next page still reads', async () => {
    // orph-1: six players no event backs, and a recorded failure still in its backoff (its
    // repair is set aside, a sample); orph-2 after it, read as a page of its own.
    await applyInOneTransaction(db.pool, ['orph-1', 'orph-2'].flatMap(huntEvents));
    await db.pool.query(`INSERT INTO player_scores (hunt_id, player_id, score) SELECT 'orph-1', 'ghost-' || g, 5 FROM generate_series(1, 6) g`);
    await db.pool.query(`INSERT INTO reconcile_failures (hunt_id, run_id, error, retry_after) VALUES ('orph-1', 'earlier', 'refused', now() + interval '5 minutes')`);
    try {
      const reports = await runDataQuality(db.pool, 'dq-orphans', true, undefined, { huntsPerPage: 1 });
      const orphans = reports.find((r) => r.check === 'orphan_projection_rows');
      expect(orphans?.count).toBe(6);
      expect(orphans?.samples).toHaveLength(5);
      expect(orphans?.samples[0]).toEqual({ hunt_id: 'orph-1', kind: 'repair_failed', error: 'refused' });
    } finally {
      await db.pool.query(`DELETE FROM reconcile_failures`);
      await db.pool.query(`DELETE FROM player_scores WHERE player_id LIKE 'ghost-%'`);
    }
  });
});
