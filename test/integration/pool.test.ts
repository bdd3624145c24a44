/**
 * A Postgres that goes away must not kill the process: pg emits 'error' on a client whose
 * connection breaks, and an 'error' event nobody listens to is fatal in Node. The pool only
 * listens while a client is idle; this pins down the case that once crashed the consumer
 * in CI: the server ends a connection while a transaction holds it between two queries.
 */
import { describe, expect, it } from 'vitest';
import { createPool } from '../../src/store/pool';
import { useTestDatabase } from '../helpers/database-fixture';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();

describe('the Postgres pool', () => {
  it('reports a connection lost while checked out, and the next checkout works', async () => {
    const lost: Error[] = [];
    const pool = createPool({ databaseUrl: db.url }, 2, (err) => lost.push(err));
    try {
      const held = await pool.connect();
      await held.query('BEGIN');
      const { rows } = await held.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);

      // Without a listener this 'error' would be an uncaught exception failing the run.
      await waitFor('the broken connection to be reported', () => lost.length > 0);
      await expect(held.query('COMMIT')).rejects.toThrow();
      held.release(lost[0]);

      const { rows: after } = await pool.query<{ one: number }>('SELECT 1 AS one');
      expect(after[0]!.one).toBe(1);
    } finally {
      await pool.end();
    }
  });
});
