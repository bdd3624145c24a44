/**
 * One Postgres transaction on a pooled client. Every caller goes through here so the
 * release-on-error rule lives in one place: after a failure the client is released with the
 * error, so the pool discards it; a connection that broke mid-transaction is never reused.
 * Callers that need an isolation level or `SET LOCAL` issue them first inside `work`.
 */
import type pg from 'pg';
import { settleAll } from '../settle-all';

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

/**
 * One transaction on a client in pg's pipeline mode (`pipeline: true`): BEGIN and every
 * statement `write` issues (synchronously, each a query already sent) go in one write, and
 * Postgres runs them in that order, each after the one before has finished. The COMMIT
 * follows once every one of them has answered: a statement the driver fails before sending
 * it (a parameter it cannot encode) never reaches Postgres, so nothing would abort the
 * transaction, and a COMMIT written behind it would commit the others. On any failure (the
 * first one is thrown: those after a statement Postgres refused fail with 25P02) the client
 * is released with the error, so the pool discards it and Postgres rolls the transaction back.
 */
export async function withPipelinedTransaction(pool: pg.Pool, write: (client: pg.PoolClient) => readonly Promise<unknown>[]): Promise<void> {
  const client = await pool.connect();
  try {
    await settleAll<unknown>([client.query('BEGIN'), ...write(client)]);
    await client.query('COMMIT');
    client.release();
  } catch (err) {
    client.release(err instanceof Error ? err : true);
    throw err;
  }
}
