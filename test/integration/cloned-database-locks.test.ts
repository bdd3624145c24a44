/**
 * Locks of another database of the same cluster: pg_locks lists every database's, and a
 * database cloned from ours (CREATE DATABASE ... TEMPLATE: a tenant's, a staging copy, the
 * tests' own) has tables of the same oids. A session there writing its `events` held our
 * rollups and reconciles (UnsettledWritersError, naming a pid not ours), and one holding its
 * `hunts` kept our reprocess from its fence.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { prepareShadow } from '../../src/store/batch/reprocess';
import { settledBound } from '../../src/store/batch/settled-seq';
import { createTestDatabase } from '../helpers/database';
import { clueFound } from '../helpers/event-builders';
import { applyInOneTransaction } from '../helpers/stored-events';

/** A session of `other` that holds `lock` in an open transaction until the test ends. */
async function holdIn(url: string, lock: string): Promise<void> {
  const session = new pg.Client({ connectionString: url });
  await session.connect();
  await session.query('BEGIN');
  await session.query(lock);
  onTestFinished(async () => {
    await session.query('ROLLBACK').catch(() => undefined);
    await session.end();
  });
}

async function twoDatabases() {
  const [ours, other] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  onTestFinished(async () => {
    await ours.dispose();
    await other.dispose();
  });
  // Cloned from one template: the same tables have the same oids in both.
  const oid = async (db: { pool: pg.Pool }, table: string) => (await db.pool.query<{ oid: number }>(`SELECT $1::regclass::oid AS oid`, [table])).rows[0]!.oid;
  expect(await oid(ours, 'events')).toBe(await oid(other, 'events'));
  return { ours, other };
}

describe('locks of a database cloned from ours', () => {
  it("are not our writers: the settled bound does not wait for another database's insert into its events", async () => {
    const { ours, other } = await twoDatabases();
    await applyInOneTransaction(ours.pool, [clueFound({ eventId: 'settled' })]);
    await holdIn(other.url, 'LOCK TABLE events IN ROW EXCLUSIVE MODE');
    await expect(settledBound(ours.pool, 0, 0, Number.MAX_SAFE_INTEGER, 500)).resolves.toMatchObject({ toSeq: expect.any(Number) });
  });

  it("do not keep our reprocess from its fence: another database's session on its hunts is not ours", async () => {
    const { ours, other } = await twoDatabases();
    await holdIn(other.url, 'LOCK TABLE hunts IN ROW SHARE MODE');
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // held past the fence's "held long"
    await expect(prepareShadow(ours.pool, 'leaderboard', 'clone-run', 2_000)).resolves.toMatchObject({ huntsTotal: 0 });
  });
});
