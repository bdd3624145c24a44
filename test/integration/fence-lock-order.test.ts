/**
 * The per-hunt fence rows are locked in one order by every writer, on a database whose
 * default collation is not C too (as a managed Postgres often is): the hot path sorted them
 * by the database's collation and reconcile by byte order, so with hunts `a` and `B` each
 * could hold the row the other waited for, and Postgres broke the deadlock by failing one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseOccurredAt } from '../../src/events/schema';
import { reconcileHunts } from '../../src/store/correctness/reconcile';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { clueFound } from '../helpers/event-builders';
import { waitFor } from '../helpers/wait';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ icuLocale: 'en-US' });
});
afterAll(async () => {
  await db?.dispose();
});

let n = 0;
const store = (huntIds: string[]) =>
  withTransaction(db.pool, (client) =>
    applyEvents(client, huntIds.map((huntId) => {
      const event = clueFound({ eventId: `e-${n++}`, huntId, playerId: 'ann', clueId: `c${n}`, points: 1, occurredAt: new Date(Date.now() - 60_000 + n).toISOString() });
      return { event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' };
    })),
  );
const lockWaits = async () =>
  (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0]!.n;

describe('the fence lock order', () => {
  it('is byte order for the hot path and reconcile alike, whatever the database collation', async () => {
    const sorted = await db.pool.query<{ h: string }>(`SELECT h FROM unnest(ARRAY['a', 'B']) AS h ORDER BY h`);
    expect(sorted.rows.map((r) => r.h)).toEqual(['a', 'B']); // this database's own order: not byte order
    await store(['a', 'B']);

    // A third session holds `a`: the hot path and reconcile both queue behind it.
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM hunts WHERE hunt_id = 'a' FOR UPDATE`);
      const hotPath = store(['a', 'B']).then(() => 'committed', (err: Error) => err.message);
      await waitFor('the hot path to wait for a lock', async () => (await lockWaits()) === 1);
      const reconcile = reconcileHunts(db.pool, ['B', 'a'], 'run-order', true).then(() => 'committed', (err: Error) => err.message);
      // Byte order: both wait for `B` or `a` without holding what the other needs.
      await waitFor('reconcile to wait for a lock', async () => (await lockWaits()) === 2);
      await holder.query('COMMIT');
      expect(await Promise.all([hotPath, reconcile])).toEqual(['committed', 'committed']);
    } finally {
      holder.release();
    }
  });
});
