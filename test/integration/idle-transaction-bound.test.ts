/**
 * A process frozen (SIGSTOP) or cut off mid-transaction leaves its session "idle in
 * transaction" holding its locks; nothing on the client side can end it. The worker's and
 * the hot path's pools have Postgres end such a session after a bound, so the reprocess
 * fence or a hunt's row it held is freed and the stream goes on. Sessions carry the
 * process's name, so the steps that wait on one say whose it is. Here the frozen process is
 * this one: a transaction takes the lock and then sends nothing more.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createIngestPool } from '../../src/ingest/service';
import { allowIdleInTransaction } from '../../src/store/bounded-transaction';
import { processApplicationName } from '../../src/store/pool';
import { describeSessions } from '../../src/store/sessions';
import { createWorkerPool } from '../../src/worker/service';
import { useTestDatabase } from '../helpers/database-fixture';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();

// Short, so the test waits little; the processes use IDLE_IN_TRANSACTION_LIMIT_MS.
const IDLE_BOUND_MS = 1000;
// Far past the bound: a lock still held then was not freed by it (the old code waits for ever).
const WAIT_FOR_LOCK_MS = 15_000;

interface FrozenHolder {
  pid: number;
  client: pg.PoolClient;
  released: boolean;
}

const holders: FrozenHolder[] = [];

/** Ends `pool` even when a test failed with a holder still checked out (pool.end() would wait for it for ever). */
async function endPool(pool: pg.Pool): Promise<void> {
  for (const holder of holders.splice(0)) if (!holder.released) holder.client.release(true);
  await pool.end();
}

/** Opens a transaction on `pool`, runs `lockSql` in it, and then goes silent, as a frozen process does. */
async function freezeHoldingLock(pool: pg.Pool, lockSql: string): Promise<FrozenHolder> {
  const client = await pool.connect();
  await client.query('BEGIN');
  await client.query(lockSql);
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const holder = { pid: rows[0]!.pid, client, released: false };
  holders.push(holder);
  return holder;
}

/** Another session's transaction taking `lockSql` (what the hot path or a fence step does next), waiting at most WAIT_FOR_LOCK_MS. */
async function takeLockElsewhere(lockSql: string): Promise<void> {
  const other = new pg.Client({ connectionString: db.url });
  await other.connect();
  try {
    await other.query('BEGIN');
    await other.query(`SET LOCAL lock_timeout = ${WAIT_FOR_LOCK_MS}`);
    await other.query(lockSql);
    await other.query('COMMIT');
  } finally {
    await other.end();
  }
}

async function sessionOf(pid: number): Promise<{ application_name: string; state: string } | undefined> {
  const { rows } = await db.pool.query<{ application_name: string; state: string }>('SELECT application_name, state FROM pg_stat_activity WHERE pid = $1', [pid]);
  return rows[0];
}

/** The frozen session was ended by Postgres: reported as lost (not thrown), its client unusable, the pool usable. */
async function expectEndedAndPoolRecovers(pool: pg.Pool, holder: FrozenHolder, lost: Error[]): Promise<void> {
  await waitFor('the ended session to be reported', () => lost.length > 0);
  expect(lost.map((e) => e.message).join('; ')).toMatch(/idle-in-transaction timeout|terminated/);
  await expect(holder.client.query('COMMIT')).rejects.toThrow();
  holder.client.release(lost[0]);
  holder.released = true;
  expect(await sessionOf(holder.pid)).toBeUndefined();
  const { rows } = await pool.query<{ one: number }>('SELECT 1 AS one');
  expect(rows[0]!.one).toBe(1);
}

describe('a session left idle in a transaction', () => {
  it('of the worker, holding the reprocess fence, is ended and the hot path gets its lock; the waiter is told whose it was', async () => {
    const lost: Error[] = [];
    const pool = createWorkerPool({ databaseUrl: db.url }, (err) => lost.push(err), 10_000, IDLE_BOUND_MS);
    try {
      const holder = await freezeHoldingLock(pool, 'LOCK TABLE hunts IN EXCLUSIVE MODE');
      expect(await sessionOf(holder.pid)).toEqual({ application_name: processApplicationName('hunt-worker'), state: 'idle in transaction' });
      // What a step that finds the fence taken reports (FenceBusyError, UnsettledWritersError).
      const [described] = await describeSessions(db.pool, [holder.pid]);
      expect(described).toContain(`application "hunt-worker pid ${process.pid} on `);

      // A hot-path commit: its first statement takes hunts' rows, which the fence excludes.
      await takeLockElsewhere(`INSERT INTO hunts (hunt_id) VALUES ('h-after-freeze') ON CONFLICT (hunt_id) DO NOTHING`);

      await expectEndedAndPoolRecovers(pool, holder, lost);
    } finally {
      await endPool(pool);
    }
  });

  it("of the hot path, holding a hunt's row, is ended and a fence step gets the row", async () => {
    await db.pool.query(`INSERT INTO hunts (hunt_id) VALUES ('h-ingest') ON CONFLICT (hunt_id) DO NOTHING`);
    const lost: Error[] = [];
    const pool = createIngestPool({ databaseUrl: db.url }, 2, (err) => lost.push(err), IDLE_BOUND_MS);
    try {
      const holder = await freezeHoldingLock(pool, `SELECT hunt_id FROM hunts WHERE hunt_id = 'h-ingest' FOR UPDATE`);
      expect(await sessionOf(holder.pid)).toEqual({ application_name: processApplicationName('hunt-ingest'), state: 'idle in transaction' });

      // reconcile's fence on that hunt.
      await takeLockElsewhere(`SELECT hunt_id FROM hunts WHERE hunt_id = 'h-ingest' FOR UPDATE`);

      await expectEndedAndPoolRecovers(pool, holder, lost);
    } finally {
      await endPool(pool);
    }
  });

  it('that allowed itself to wait (a fill chunk waiting for its other lanes) is left alone', async () => {
    const lost: Error[] = [];
    const pool = createWorkerPool({ databaseUrl: db.url }, (err) => lost.push(err), 10_000, IDLE_BOUND_MS);
    try {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await allowIdleInTransaction(client, 60_000);
        await client.query(`INSERT INTO hunts (hunt_id) VALUES ('h-waited') ON CONFLICT (hunt_id) DO NOTHING`);
        await new Promise((resolve) => setTimeout(resolve, 3 * IDLE_BOUND_MS));
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      expect(lost).toEqual([]);
      const { rows } = await db.pool.query(`SELECT 1 FROM hunts WHERE hunt_id = 'h-waited'`);
      expect(rows).toHaveLength(1);
      // Only that transaction: the session's next one is bounded again.
      const holder = await freezeHoldingLock(pool, 'SELECT 1');
      await expectEndedAndPoolRecovers(pool, holder, lost);
    } finally {
      await endPool(pool);
    }
  });
});
