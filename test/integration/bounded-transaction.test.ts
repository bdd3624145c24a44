/**
 * withBoundedTransaction on the real Postgres: a job step's transaction ends with the step.
 * Its running statement is cancelled when the step's signal aborts; and a signal that
 * aborted while the step waited for a pooled connection starts no statement at all (the
 * listener that cancels was not there yet, and the work ran on for its statement limit).
 */
import { describe, expect, it } from 'vitest';
import { createPool } from '../../src/store/pool';
import { withBoundedTransaction } from '../../src/store/bounded-transaction';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();
const bounds = (signal: AbortSignal) => ({ statementTimeoutMs: 60_000, signal });

describe('withBoundedTransaction', () => {
  it('cancels the running statement when the signal aborts', async () => {
    const abort = new AbortController();
    const started = Date.now();
    const running = withBoundedTransaction(db.pool, bounds(abort.signal), (client) => {
      const sleeping = client.query('SELECT pg_sleep(30)');
      // Once the statement is sent: however long the connection and BEGIN took.
      setTimeout(() => abort.abort(), 300);
      return sleeping;
    });
    await expect(running).rejects.toThrow(/canceling statement due to user request/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('starts no statement of the work when the signal aborted while it waited for a connection', async () => {
    const pool = createPool({ databaseUrl: db.url }, 1);
    const held = await pool.connect();
    try {
      const abort = new AbortController();
      let worked = false;
      const waiting = withBoundedTransaction(pool, bounds(abort.signal), async (client) => {
        worked = true;
        await client.query('SELECT pg_sleep(30)');
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      abort.abort();
      held.release();
      await expect(waiting).rejects.toThrow(/aborted/i);
      expect(worked).toBe(false);
    } finally {
      await pool.end();
    }
  });
});
