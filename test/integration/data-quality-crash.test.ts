/**
 * dataQuality's report after a crash, on the real Postgres: a retry resumes from the
 * checkpoint committed with the work (job_progress), not from a heartbeat that may be
 * behind it, so a repairing check's findings are counted once: not lost because the retry
 * ran the check again after the repair and found nothing, not counted twice.
 * (MockActivityEnvironment runs the real activity; a heartbeat that throws is the worker
 * dying right after the work before it committed.)
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createDataQualityActivities, type DataQualityHeartbeat } from '../../src/correctness/data-quality-job';
import type { HuntEvent } from '../../src/events/schema';
import { parseOccurredAt } from '../../src/events/schema';
import type { CheckReport } from '../../src/store/correctness/data-quality';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { atSecond, clueFound, joined } from '../helpers/event-builders';

const db = useTestDatabase();

/** Two hunts, each with a live player no stored event backs (an orphan row). */
async function storeWithOrphans(prefix: string): Promise<void> {
  const events: HuntEvent[] = [`${prefix}-a`, `${prefix}-b`].flatMap((huntId) => [
    joined({ eventId: `${huntId}-j`, huntId, playerId: 'ann', displayName: 'Ann', occurredAt: atSecond(1) }),
    clueFound({ eventId: `${huntId}-c`, huntId, playerId: 'ann', clueId: 'c1', points: 10, occurredAt: atSecond(2) }),
  ]);
  await withTransaction(db.pool, (c) => applyEvents(c, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }))));
  await db.pool.query(
    `INSERT INTO player_scores (hunt_id, player_id, score, clues_found, treasures_claimed, active)
     SELECT h, 'ghost', 10, 1, 0, true FROM unnest($1::text[]) AS h`,
    [[`${prefix}-a`, `${prefix}-b`]],
  );
}

/** The workflow run the attempts belong to: the workflow id is the report's run id, as in workflows/data-quality.ts. */
const workflowRun = (runId: string) => ({ workflowExecution: { workflowId: runId, runId: `${runId}-run` } });

/**
 * Runs attempt 1 until `dies` says so, then attempt 2 from the last heartbeat the server got
 * before: of those `sent` lets through (the others the throttle held back).
 */
async function crashAndRetry(runId: string, dies: (details: DataQualityHeartbeat) => boolean, sent = (_: DataQualityHeartbeat) => true): Promise<CheckReport[]> {
  const { runDataQualityChecks } = createDataQualityActivities({ pool: db.pool });
  const input = { runId, repair: true };
  const attempt1 = new MockActivityEnvironment(workflowRun(runId));
  let delivered: DataQualityHeartbeat | undefined;
  attempt1.on('heartbeat', (details: DataQualityHeartbeat) => {
    if (dies(details)) throw new Error('worker killed');
    if (sent(details)) delivered = structuredClone(details);
  });
  await expect(attempt1.run(runDataQualityChecks, input)).rejects.toThrow('worker killed');
  const attempt2 = new MockActivityEnvironment({ ...workflowRun(runId), heartbeatDetails: delivered, attempt: 2 });
  return (await attempt2.run(runDataQualityChecks, input)) as CheckReport[];
}

const orphans = (reports: CheckReport[]) => reports.find((r) => r.check === 'orphan_projection_rows');
const stored = async (runId: string) =>
  (await db.pool.query(`SELECT finding_count, repaired FROM dq_reports WHERE run_id = $1 AND check_name = 'orphan_projection_rows'`, [runId])).rows;
const REPAIRED = { huntsReconciled: 2, playersRepaired: 2, treasuresRepaired: 0, creditsRepaired: 0 };

describe('dataQuality with repair, retried after a crash', () => {
  it('keeps a finished check’s findings when its heartbeats never reached the server', async () => {
    await storeWithOrphans('fin');
    const reports = await crashAndRetry(
      'dq-crash-finished',
      (d) => d.finished.some((r) => r.check === 'orphan_projection_rows'),
      (d) => d.progress?.check !== 'orphan_projection_rows',
    );
    expect(orphans(reports)).toMatchObject({ count: 2, repaired: REPAIRED });
    expect(await stored('dq-crash-finished')).toEqual([{ finding_count: 2, repaired: REPAIRED }]);
  });

  it('counts a page repaired just before the crash once', async () => {
    await storeWithOrphans('page');
    const reports = await crashAndRetry('dq-crash-page', (d) => d.progress?.check === 'orphan_projection_rows' && d.progress.huntsDone !== undefined);
    expect(orphans(reports)).toMatchObject({ count: 2, repaired: REPAIRED });
    expect(await stored('dq-crash-page')).toEqual([{ finding_count: 2, repaired: REPAIRED }]);
  });

  it('counts rollup windows it re-aggregated before the crash', async () => {
    // Windows of a hunt with no events: what no flush would write.
    for (const table of ['rollup_minute', 'rollup_hour']) {
      await db.pool.query(
        `INSERT INTO ${table} (hunt_id, window_start, events, players, clues_found, clue_points, hints_used, hint_penalties, treasure_claims)
         VALUES ('no-such-hunt', '2026-01-01T00:00:00Z', 3, 1, 1, 10, 0, 0, 0)`,
      );
    }
    // The report row fails to commit (the connection lost, say) after the repair did.
    await db.pool.query(`CREATE FUNCTION lose_rollup_report() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.check_name = 'rollup_mismatch' THEN RAISE EXCEPTION 'connection lost'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER lose_rollup_report BEFORE INSERT ON dq_reports FOR EACH ROW EXECUTE FUNCTION lose_rollup_report()');
    const { runDataQualityChecks } = createDataQualityActivities({ pool: db.pool });
    const input = { runId: 'dq-crash-rollup', repair: true };
    const attempt1 = new MockActivityEnvironment(workflowRun(input.runId));
    let delivered: DataQualityHeartbeat | undefined;
    attempt1.on('heartbeat', (details: DataQualityHeartbeat) => (delivered = structuredClone(details)));
    await expect(attempt1.run(runDataQualityChecks, input)).rejects.toThrow(/connection lost/);
    await db.pool.query('DROP TRIGGER lose_rollup_report ON dq_reports');
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM rollup_minute WHERE hunt_id = 'no-such-hunt'`)).rows[0].n).toBe(0);

    const attempt2 = new MockActivityEnvironment({ ...workflowRun(input.runId), heartbeatDetails: delivered, attempt: 2 });
    const reports = (await attempt2.run(runDataQualityChecks, input)) as CheckReport[];
    expect(reports.find((r) => r.check === 'rollup_mismatch')).toMatchObject({ count: 2 });
    const row = await db.pool.query(`SELECT finding_count FROM dq_reports WHERE run_id = $1 AND check_name = 'rollup_mismatch'`, [input.runId]);
    expect(row.rows).toEqual([{ finding_count: 2 }]);
  });
});
