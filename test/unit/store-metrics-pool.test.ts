/**
 * The refresh of the gauges read from Postgres shares the read API's small pool with game
 * clients' reads: it takes one connection at a time, so a slow refresh never holds them all.
 */
import type pg from 'pg';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { startStoreGauges } from '../../src/api/store-metrics';
import { createLogger } from '../../src/log';

describe('the store gauges refresh', () => {
  it('runs its queries one at a time, every one of them', async () => {
    let running = 0;
    let mostAtOnce = 0;
    let queries = 0;
    const pool = {
      query: async () => {
        queries++;
        mostAtOnce = Math.max(mostAtOnce, ++running);
        await new Promise((resolve) => setTimeout(resolve, 20));
        running--;
        return { rows: [] };
      },
    } as unknown as pg.Pool;
    const gauges = startStoreGauges(new Registry(), pool, 60_000, createLogger({ logLevel: 'silent' }));
    try {
      await gauges.firstRefresh;
      expect(queries).toBeGreaterThanOrEqual(6);
      expect(mostAtOnce).toBe(1);
    } finally {
      gauges.stop();
    }
  });
});
