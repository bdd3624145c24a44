/**
 * hunt_store_oldest_transaction_seconds on the real Postgres: a session left idle in a
 * transaction keeps vacuum from removing the row versions the hot path replaces on every
 * event. The gauge must show how long it has been open, and drop once it ends.
 */
import pg from 'pg';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { startStoreGauges } from '../../src/api/store-metrics';
import { createLogger } from '../../src/log';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();

async function oldestTransaction(): Promise<number | undefined> {
  const registry = new Registry();
  const gauges = startStoreGauges(registry, db.pool, 60_000, createLogger({ logLevel: 'silent' }));
  await gauges.firstRefresh;
  gauges.stop();
  return (await registry.getMetricsAsJSON()).find((m) => m.name === 'hunt_store_oldest_transaction_seconds')?.values[0]?.value;
}

describe('hunt_store_oldest_transaction_seconds', () => {
  it("shows how long a session idle in a transaction has held it open, and 0 once it ends", async () => {
    const analyst = new pg.Client({ connectionString: db.url });
    await analyst.connect();
    try {
      expect(await oldestTransaction()).toBe(0);
      await analyst.query('BEGIN');
      await analyst.query('SELECT count(*) FROM player_scores'); // the snapshot vacuum must keep
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const open = (await oldestTransaction()) as number;
      expect(open).toBeGreaterThanOrEqual(1.4);
      expect(open).toBeLessThan(60);
      await analyst.query('COMMIT');
      expect(await oldestTransaction()).toBe(0);
    } finally {
      await analyst.end();
    }
  });
});
