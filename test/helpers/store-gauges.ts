/** The gauges the read API reads from Postgres (src/api/store-metrics.ts), as a scrape sees them after one refresh. */
import type pg from 'pg';
import { Registry } from 'prom-client';
import { startStoreGauges } from '../../src/api/store-metrics';
import { createLogger } from '../../src/log';

/** A registry holding the store gauges, refreshed once from `pool` (the timer stopped). */
export async function refreshedStoreGauges(pool: pg.Pool): Promise<Registry> {
  const registry = new Registry();
  const gauges = startStoreGauges(registry, pool, 60_000, createLogger({ logLevel: 'silent' }));
  await gauges.firstRefresh;
  gauges.stop();
  return registry;
}

/** An unlabelled store gauge's value after one refresh (undefined when it shows none). */
export async function storeGaugeValue(pool: pg.Pool, name: string): Promise<number | undefined> {
  const metrics = await (await refreshedStoreGauges(pool)).getMetricsAsJSON();
  return metrics.find((m) => m.name === name)?.values[0]?.value;
}
