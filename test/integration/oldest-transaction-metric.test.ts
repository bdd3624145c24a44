/**
 * hunt_store_oldest_transaction_seconds on the real Postgres: a transaction left open with a
 * snapshot or a write keeps vacuum from removing the row versions the hot path replaces on
 * every event. The gauge must show how long it has been open, not count one that holds
 * neither, and drop once it ends.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { sleep } from '../../src/backoff';
import { useTestDatabase } from '../helpers/database-fixture';
import { storeGaugeValue } from '../helpers/store-gauges';

const db = useTestDatabase();

const oldestTransaction = () => storeGaugeValue(db.pool, 'hunt_store_oldest_transaction_seconds');

describe('hunt_store_oldest_transaction_seconds', () => {
  it('shows how long a transaction holding vacuum back has been open (a snapshot, or a write), and 0 once it ends', async () => {
    const analyst = new pg.Client({ connectionString: db.url });
    await analyst.connect();
    try {
      expect(await oldestTransaction()).toBe(0);
      // READ COMMITTED, idle after a read: no snapshot held, vacuum goes on past it.
      await analyst.query('BEGIN');
      await analyst.query('SELECT count(*) FROM player_scores');
      await sleep(1_500);
      expect(await oldestTransaction()).toBe(0);
      await analyst.query('COMMIT');

      // REPEATABLE READ keeps its snapshot for the whole transaction.
      await analyst.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await analyst.query('SELECT count(*) FROM player_scores');
      await sleep(1_500);
      const snapshot = (await oldestTransaction()) as number;
      expect(snapshot).toBeGreaterThanOrEqual(1.4);
      expect(snapshot).toBeLessThan(60);
      await analyst.query('COMMIT');
      expect(await oldestTransaction()).toBe(0);

      // A write takes a transaction id, which vacuum must wait for too.
      await analyst.query('BEGIN');
      await analyst.query(`INSERT INTO hunts (hunt_id) VALUES ('held') ON CONFLICT DO NOTHING`);
      await sleep(1_500);
      expect(await oldestTransaction()).toBeGreaterThanOrEqual(1.4);
      await analyst.query('ROLLBACK');
      expect(await oldestTransaction()).toBe(0);
    } finally {
      await analyst.end();
    }
  });
});
