/**
 * dlqReplay's totals after a crash, on the real Postgres: a retry resumes from the totals
 * and cursor saved with the last committed batch, not from a heartbeat that may be batches
 * behind (throttled, lost with its worker); and an older attempt still running cannot commit
 * a batch once a newer attempt took over. (MockActivityEnvironment runs the real activity.)
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createDlqReplayActivities, type ReplayInput, type ReplayTotals } from '../../src/correctness/dlq-replay-job';
import { parseOccurredAt } from '../../src/events/schema';
import { replayBatch } from '../../src/store/correctness/dlq-replay';
import { claimProgress, ProgressSuperseded, saveProgress } from '../../src/store/correctness/job-progress';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';

const db = useTestDatabase();

const event = (i: number) => clueFound({ eventId: `dlq-${i}`, huntId: 'hq', playerId: `p${i % 3}`, clueId: `c${i}`, points: 1, occurredAt: new Date(Date.now() - 60_000 + i).toISOString() });

/** Quarantines `values` (as ingest would), in order. */
async function quarantine(values: Buffer[], topic = 'dlq-crash'): Promise<void> {
  await db.pool.query(
    `INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail)
     SELECT $2, 0, o, v, 'unprocessable', 'test' FROM unnest($1::bytea[]) WITH ORDINALITY AS u(v, o)`,
    [values, topic],
  );
}

const input: ReplayInput = { batchSize: 4, dryRun: false };
const run = (runId: string) => ({ workflowExecution: { workflowId: 'dlq-crash', runId } });

describe('dlqReplay, retried after a crash', () => {
  it('reports every record once: the retry resumes from what the last batch committed', async () => {
    // 2 already stored (duplicates), 10 valid now, 3 still invalid: 15 rows, 4 batches of 4.
    const stored = [event(0), event(1)];
    await withTransaction(db.pool, (c) => applyEvents(c, stored.map((e) => ({ event: e, instant: parseOccurredAt(e.occurredAt)!, source: 'test' }))));
    const valid = Array.from({ length: 10 }, (_, i) => event(i + 2));
    await quarantine([...stored, ...valid].map((e) => Buffer.from(JSON.stringify(e))).concat([0, 1, 2].map((i) => Buffer.from(`not json ${i}`))));
    const { replayQuarantined } = createDlqReplayActivities({ pool: db.pool });

    // Attempt 1 dies after its second batch committed: the server holds the first batch's
    // heartbeat, the second's was never sent.
    const attempt1 = new MockActivityEnvironment(run('r1'));
    const delivered: ReplayTotals[] = [];
    attempt1.on('heartbeat', (details: ReplayTotals) => {
      if (delivered.length === 1) throw new Error('worker killed');
      delivered.push(structuredClone(details));
    });
    await expect(attempt1.run(replayQuarantined, input)).rejects.toThrow('worker killed');
    expect(delivered[0]).toMatchObject({ examined: 4 });
    expect((await db.pool.query('SELECT count(*)::int AS n FROM quarantine WHERE replayed_at IS NOT NULL')).rows[0].n).toBe(8);

    const attempt2 = new MockActivityEnvironment({ ...run('r1'), heartbeatDetails: delivered[0], attempt: 2 });
    const totals = (await attempt2.run(replayQuarantined, input)) as ReplayTotals;
    expect(totals).toMatchObject({ examined: 15, replayed: 10, duplicates: 2, stillInvalid: { invalid_json: 3 } });
    expect((await db.pool.query('SELECT count(*)::int AS n FROM events')).rows[0].n).toBe(12);

    // A retry after the last batch (the completion lost) reports the same totals.
    const attempt3 = new MockActivityEnvironment({ ...run('r1'), attempt: 3 });
    expect(await attempt3.run(replayQuarantined, input)).toEqual(totals);
    // A new run starts its own totals.
    expect(await new MockActivityEnvironment(run('r2')).run(replayQuarantined, input)).toMatchObject({ examined: 3, replayed: 0, stillInvalid: { invalid_json: 3 } });
  });

  it('ends at the newest record quarantined when it began, however fast new ones arrive', async () => {
    await db.pool.query('UPDATE quarantine SET replayed_at = now() WHERE replayed_at IS NULL');
    await quarantine([1, 2, 3].map((i) => Buffer.from(`flood start ${i}`)), 'dlq-flood');
    // A flood of rejects: every batch the replay commits, one more arrives (40 at most, so
    // the code before ends too, having chased them all).
    await db.pool.query(`CREATE TABLE flood_count (n int NOT NULL)`);
    await db.pool.query(`INSERT INTO flood_count VALUES (0)`);
    await db.pool.query(`
      CREATE FUNCTION flood() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE flood_count SET n = n + 1 WHERE n < 40;
        IF FOUND THEN
          INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail)
          VALUES ('dlq-flood', 1, (SELECT n FROM flood_count), 'flood', 'invalid_json', 'test');
        END IF;
        RETURN NULL;
      END $$`);
    await db.pool.query(`CREATE TRIGGER flood AFTER UPDATE OF replayed_at ON quarantine FOR EACH STATEMENT EXECUTE FUNCTION flood()`);
    try {
      const { replayQuarantined } = createDlqReplayActivities({ pool: db.pool });
      const totals = (await new MockActivityEnvironment(run('flood')).run(replayQuarantined, { batchSize: 1, dryRun: false })) as ReplayTotals;
      // The three it began with, not the records that came after.
      expect(totals).toMatchObject({ examined: 3, stillInvalid: { invalid_json: 3 } });
      expect(totals.throughId).toBe(totals.lastId);
    } finally {
      await db.pool.query('DROP TRIGGER flood ON quarantine');
      await db.pool.query('DROP FUNCTION flood()');
      await db.pool.query('DROP TABLE flood_count');
    }
  });

  it('rolls back a batch of an attempt a newer one superseded', async () => {
    await quarantine([Buffer.from(JSON.stringify(event(50)))], 'dlq-frozen');
    const old = { runId: 'dlq-crash/frozen', step: 'replayQuarantined', attempt: 1 };
    await claimProgress(db.pool, old);
    await claimProgress(db.pool, { ...old, attempt: 2 });
    await expect(claimProgress(db.pool, old)).rejects.toThrow(ProgressSuperseded);
    const frozen = replayBatch(db.pool, {}, 0, 10, false, { record: (client, batch) => saveProgress(client, old, batch) });
    await expect(frozen).rejects.toThrow(/attempt 1 was superseded by attempt 2/);
    expect((await db.pool.query(`SELECT replayed_at FROM quarantine WHERE source_topic = 'dlq-frozen'`)).rows).toEqual([{ replayed_at: null }]);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM events WHERE event_id = 'dlq-50'`)).rows[0].n).toBe(0);
  });
});
