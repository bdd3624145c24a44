/**
 * dataQuality's attempts: an outage is retried for as long as it lasts (its workflow sets no
 * cap on attempts), and any other failure fails the run from the fifth attempt on, naming
 * the check, rather than load Postgres again and again.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { ATTEMPTS_ON_FAULT, createDataQualityActivities } from '../../src/correctness/data-quality-job';
import { createPool } from '../../src/store/pool';
import { useTestDatabase } from '../helpers/database-fixture';
import { freePort } from '../helpers/tcp-forward';

const db = useTestDatabase();
const input = { runId: 'dq-retries', repair: false };

async function failureOfAttempt(pool: Parameters<typeof createDataQualityActivities>[0]['pool'], attempt: number): Promise<unknown> {
  const { runDataQualityChecks } = createDataQualityActivities({ pool });
  return new MockActivityEnvironment({ attempt }).run(runDataQualityChecks, input).then(
    () => {
      throw new Error('the attempt did not fail');
    },
    (err: unknown) => err,
  );
}

describe('dataQuality attempts', () => {
  it('leave an outage to be retried, however many attempts it has taken', async () => {
    const pool = createPool({ databaseUrl: `postgres://hunt@127.0.0.1:${await freePort()}/hunt` }, 1);
    try {
      const failure = await failureOfAttempt(pool, ATTEMPTS_ON_FAULT + 20);
      expect(failure).not.toBeInstanceOf(ApplicationFailure);
      expect(String(failure)).toMatch(/ECONNREFUSED/);
    } finally {
      await pool.end();
    }
  });

  it('fail the run on another failure from the fifth attempt on, naming the check; not before', async () => {
    // A check that fails the same way on every try: its table is gone.
    await db.pool.query('ALTER TABLE events RENAME TO events_elsewhere');
    const early = await failureOfAttempt(db.pool, ATTEMPTS_ON_FAULT - 1);
    expect(early).not.toBeInstanceOf(ApplicationFailure);
    expect(String(early)).toMatch(/check duplicate_semantic_events: relation "events" does not exist/);

    const last = await failureOfAttempt(db.pool, ATTEMPTS_ON_FAULT);
    expect(last).toBeInstanceOf(ApplicationFailure);
    expect(last).toMatchObject({ nonRetryable: true, type: 'DataQualityCheckFailed' });
    expect((last as Error).message).toMatch(/check duplicate_semantic_events: relation "events" does not exist \(attempt 5; not retried/);
  });
});
