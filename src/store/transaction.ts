/**
 * One Postgres transaction on a pooled client. Every caller goes through here so the
 * release-on-error rule lives in one place: after a failure the client is released with the
 * error, so the pool discards it; a connection that broke mid-transaction is never reused.
 * Callers that need an isolation level or `SET LOCAL` issue them first inside `work`.
 */
import type pg from 'pg';

export async function withTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (err) {
    // A broken connection cannot roll back; its failure must not hide the original error.
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(err instanceof Error ? err : true);
    throw err;
  }
}
