/**
 * A backfill's commits and a DLQ replay's batches under their step's limits, on the real
 * Postgres. A part holding a hunt whose fence row another session keeps (an open transaction
 * in psql) waited for it with no limit, while holding the fences it had already taken (every
 * other hunt of the part, the hot path's live ones among them): the hot path's commits of
 * those hunts queued behind it, the step's keep-alive heartbeats hid the wait, and a cancel of
 * the job reached no statement. Now the wait ends at the lock limit, or at once on a cancel,
 * and the fences go with it.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { ImportPipeline, prepareImport } from '../../src/batch/backfill/import-records';
import { replayBatch } from '../../src/store/correctness/dlq-replay';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { applyInOneTransaction } from '../helpers/stored-events';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();
const LIVE = 'aa-live';
const COLD = 'zz-cold';

/** A session keeping the cold hunt's fence row, as an idle psql transaction would. */
let holder: pg.Client | undefined;
async function holdColdFence(): Promise<number> {
  // The fence rows exist whichever test runs first (or alone).
  await db.pool.query(`INSERT INTO hunts (hunt_id) VALUES ($1), ($2) ON CONFLICT DO NOTHING`, [LIVE, COLD]);
  holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query('SELECT 1 FROM hunts WHERE hunt_id = $1 FOR UPDATE', [COLD]);
  return (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
}
afterEach(async () => {
  await holder?.query('ROLLBACK').catch(() => undefined);
  await holder?.end();
  holder = undefined;
});

/** Sessions waiting for a lock `pid` holds. */
const waitingOn = async (pid: number) =>
  (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))', [pid])).rows[0]!.n;

/** Whether the live hunt's fence can be taken now (what the hot path's next commit needs). */
async function liveFenceFree(): Promise<boolean> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL lock_timeout = '1s'`);
    await client.query('SELECT 1 FROM hunts WHERE hunt_id = $1 FOR UPDATE', [LIVE]);
    return true;
  } catch {
    return false;
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

let n = 0;
function records(count: number) {
  return Array.from({ length: count }, (_, i) => ({
    offset: String(n++),
    key: null,
    value: Buffer.from(JSON.stringify(clueFound({ eventId: `bounded-${n}`, huntId: i % 2 === 0 ? LIVE : COLD, clueId: `c${n}` }))),
    timestamp: '0',
  }));
}

async function importBounded(bounds: { statementTimeoutMs: number; lockTimeoutMs?: number; signal?: AbortSignal }): Promise<unknown> {
  const origin = { topic: 'file:bounded.ndjson', partition: 0, sourceLabel: 'backfill:bounded' };
  const options = { dryRun: false, groupId: 'backfill:bounded', lanes: 1, bounds };
  const pipeline = new ImportPipeline(db.pool, options);
  try {
    await pipeline.push(await prepareImport(origin, records(10), options), () => undefined);
    await pipeline.drain();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await pipeline.settle().catch(() => undefined);
  }
}

describe("the batch plane's commits under their step's limits", () => {
  it('a backfill part waiting for a fence another session keeps gives up at the lock limit, and lets the fences it took go', async () => {
    await applyInOneTransaction(db.pool, [clueFound({ eventId: 'seed-live', huntId: LIVE }), clueFound({ eventId: 'seed-cold', huntId: COLD })]);
    const pid = await holdColdFence();
    const started = Date.now();
    const failure = importBounded({ statementTimeoutMs: 60_000, lockTimeoutMs: 2_000 });
    await waitFor('the part to wait for the cold fence', async () => (await waitingOn(pid)) === 1, { timeoutMs: 10_000, intervalMs: 50 });
    expect(await failure).toMatchObject({ code: '55P03' });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await waitingOn(pid)).toBe(0);
    expect(await liveFenceFree()).toBe(true);
  });

  it("a backfill part waiting for a fence ends at once when the step is cancelled", async () => {
    const pid = await holdColdFence();
    const cancel = new AbortController();
    const failure = importBounded({ statementTimeoutMs: 60_000, signal: cancel.signal });
    await waitFor('the part to wait for the cold fence', async () => (await waitingOn(pid)) === 1, { timeoutMs: 10_000, intervalMs: 50 });
    cancel.abort();
    await waitFor('the wait to end', async () => (await waitingOn(pid)) === 0, { timeoutMs: 10_000, intervalMs: 50 });
    expect(await failure).toMatchObject({ code: '57014' });
    expect(await liveFenceFree()).toBe(true);
  });

  it('a DLQ replay batch waiting for a fence gives up at the lock limit, and lets the fences it took go', async () => {
    const quarantined = [LIVE, COLD].map((huntId) => clueFound({ eventId: `replay-${huntId}`, huntId }));
    await db.pool.query(
      `INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail)
       SELECT 'bounded', 0, o, v, 'unprocessable', 'test' FROM unnest($1::bytea[]) WITH ORDINALITY AS u(v, o)`,
      [quarantined.map((e) => Buffer.from(JSON.stringify(e)))],
    );
    const pid = await holdColdFence();
    const failure = replayBatch(db.pool, { reasons: ['unprocessable'] }, 0, 100, false, { bounds: { statementTimeoutMs: 60_000, lockTimeoutMs: 2_000 } }).catch((err: unknown) => err);
    await waitFor('the batch to wait for the cold fence', async () => (await waitingOn(pid)) === 1, { timeoutMs: 10_000, intervalMs: 50 });
    expect(await failure).toMatchObject({ code: '55P03' });
    expect(await waitingOn(pid)).toBe(0);
    expect(await liveFenceFree()).toBe(true);
  });
});
