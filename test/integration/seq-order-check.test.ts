/**
 * The batch plane relies on the events' seq sequence handing values out in order (reconcile's
 * covering seq, reprocess's fence, the settled bound of rollupFlush). A CACHE above 1 breaks
 * that without a word, so `hunt worker` refuses to start on it, saying what to run.
 */
import { describe, expect, it } from 'vitest';
import { seqOrderProblem } from '../../src/store/batch/settled-seq';
import { useTestDatabase } from '../helpers/database-fixture';
import { runHunt } from '../helpers/hunt-command';

const db = useTestDatabase();

describe("the events' seq sequence", () => {
  it('passes as migrated (CACHE 1)', async () => {
    expect(await seqOrderProblem(db.pool)).toBeUndefined();
  });

  it('with a cache, stops hunt worker at start-up, naming the sequence and the fix', async () => {
    await db.pool.query('ALTER SEQUENCE events_seq_seq CACHE 20');
    const expected = /events' seq sequence events_seq_seq has CACHE 20; .*run ALTER SEQUENCE events_seq_seq CACHE 1/;
    expect(await seqOrderProblem(db.pool)).toMatch(expected);

    const run = await runHunt(['worker'], { DATABASE_URL: db.url, TEMPORAL_TASK_QUEUE: `seq-order-test-${process.pid}` });
    expect(run.timedOut).toBe(false);
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/the worker cannot use Postgres: the events' seq sequence events_seq_seq has CACHE 20/);

    await db.pool.query('ALTER SEQUENCE events_seq_seq CACHE 1');
    expect(await seqOrderProblem(db.pool)).toBeUndefined();
  });
});
