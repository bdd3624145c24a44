/**
 * dataQuality's attempts: an outage is retried for as long as it lasts (its workflow sets no
 * cap on attempts), and so is an attempt Temporal stops; any other failure fails the run at
 * the fifth in a row with no progress saved between, naming the check, rather than load
 * Postgres again and again.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { FAULTS_IN_A_ROW, createDataQualityActivities } from '../../src/correctness/data-quality-job';
import { useTestDatabase } from '../helpers/database-fixture';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();
const input = { runId: 'dq-retries', repair: false };

/** What the attempt `env` runs (its attempt number in its info) throws. */
async function failureOf(pool: pg.Pool, env: MockActivityEnvironment, stepInput: { runId: string; repair: boolean } = input): Promise<unknown> {
  const { runDataQualityChecks } = createDataQualityActivities({ pool });
  return env.run(runDataQualityChecks, stepInput).then(
    () => {
      throw new Error('the attempt did not fail');
    },
    (err: unknown) => err,
  );
}
const attemptEnv = (attempt: number) => new MockActivityEnvironment({ attempt });

describe('dataQuality attempts', () => {
  it('leave an outage to be retried, uncounted', async () => {
    // The check's session is ended under it (a Postgres restart, to this attempt), while the
    // pool can still record a failure: none is recorded.
    const outage = { runId: 'dq-outage', repair: false };
    const env = new MockActivityEnvironment({ attempt: 1, workflowExecution: { workflowId: 'dq-outage', runId: 'run-1' } });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      const failing = failureOf(db.pool, env, outage);
      const waiting = async () => (await db.pool.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")).rows[0]?.pid;
      await db.pool.query('SELECT pg_terminate_backend($1)', [await waitFor('the check to wait for the lock', waiting)]);
      const failure = await failing;
      expect(failure).not.toBeInstanceOf(ApplicationFailure);
      expect(String(failure)).toMatch(/terminating connection due to administrator command/);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    const { rows } = await db.pool.query<{ faults: string | null }>("SELECT state->>'faults' AS faults FROM job_progress WHERE run_id = 'dq-outage/run-1'");
    expect(rows).toEqual([{ faults: null }]);
  });

  it('fail the run at the fifth failure in a row, naming the check, not before; an attempt Temporal stops is retried', async () => {
    // A check that fails the same way on every try: its table is gone.
    await db.pool.query('ALTER TABLE events RENAME TO events_elsewhere');
    for (let attempt = 1; attempt < FAULTS_IN_A_ROW; attempt++) {
      const failure = await failureOf(db.pool, attemptEnv(attempt));
      expect(failure).not.toBeInstanceOf(ApplicationFailure);
      expect(String(failure)).toMatch(/check duplicate_semantic_events: relation "events" does not exist/);
    }
    const last = await failureOf(db.pool, attemptEnv(FAULTS_IN_A_ROW));
    expect(last).toBeInstanceOf(ApplicationFailure);
    expect(last).toMatchObject({ nonRetryable: true, type: 'DataQualityCheckFailed' });
    expect((last as Error).message).toMatch(/check duplicate_semantic_events: relation "events" does not exist \(failure 5 in a row with no progress; not retried\)/);

    // The next attempt is stopped by Temporal (a cancel, a timeout, its worker shutting down)
    // while its check waits: its failure is the stop's, retried, whatever came before.
    await db.pool.query('ALTER TABLE events_elsewhere RENAME TO events');
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      const env = new MockActivityEnvironment({ attempt: FAULTS_IN_A_ROW + 1 });
      const stopped = failureOf(db.pool, env);
      await waitFor('the check to wait for the lock', async () => (await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")).rows[0]?.n === 1);
      env.cancel('WORKER_SHUTDOWN');
      expect(await stopped).not.toBeInstanceOf(ApplicationFailure);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });

  it('fail a repairing run whose repair fails the same way on every try, though each try resumes the findings it saved', async () => {
    // An orphan projection row to repair, and a repair that cannot record its run.
    await db.pool.query("INSERT INTO player_scores (hunt_id, player_id, score) VALUES ('ghost', 'p1', 5)");
    await db.pool.query('ALTER TABLE reconcile_failures RENAME TO reconcile_failures_elsewhere');
    try {
      const repairing = { runId: 'dq-repair-retries', repair: true };
      const envOf = (attempt: number) => new MockActivityEnvironment({ attempt, workflowExecution: { workflowId: 'dq-repair-retries', runId: 'run-1' } });
      for (let attempt = 1; attempt < FAULTS_IN_A_ROW; attempt++) {
        const failure = await failureOf(db.pool, envOf(attempt), repairing);
        expect(failure).not.toBeInstanceOf(ApplicationFailure);
        expect(String(failure)).toMatch(/check orphan_projection_rows: relation "reconcile_failures" does not exist/);
      }
      // Before, each try saved its resumed findings again, which cleared the count: for ever.
      expect(await failureOf(db.pool, envOf(FAULTS_IN_A_ROW), repairing)).toMatchObject({ nonRetryable: true, type: 'DataQualityCheckFailed' });
    } finally {
      await db.pool.query('ALTER TABLE reconcile_failures_elsewhere RENAME TO reconcile_failures');
    }
  });
});
