/**
 * What one rollupFlush chunk of 50,000 new events costs when their hunt-hours already hold
 * 1M and 3M events (100 hunts): the hour windows rewritten from their raw events (as before
 * migration 011, its statement alone) against the whole chunk as it is now (minutes from raw
 * events, players noted, hours from minutes). `npx tsx bench/rollup-hour-cost.ts`; a
 * database of its own, dropped at the end. Results: bench/results/experiments-2026-12-04.md.
 */
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { loadConfig } from '../src/config';
import { flushRollupChunk, upsertWindowsSql } from '../src/store/batch/rollups';
import { BenchResources } from './lib/resources';

const config = loadConfig();
const resources = new BenchResources(config.databaseUrl, new Kafka({ brokers: config.kafka.brokers, logLevel: logLevel.NOTHING }));
const db = { pool: new pg.Pool({ connectionString: await resources.createDatabase('rollup_hour_cost') }) };
const insert = (from: number, count: number) => db.pool.query(
  `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source)
   SELECT 'e-' || i, 'hunt-' || (i % 100), 'p' || (i % 500), 'clue.found',
          timestamptz '2026-11-21 09:00:00Z' + ((i % 3600000) || ' milliseconds')::interval,
          jsonb_build_object('clueId', 'c' || (i % 20), 'points', i % 50), 'bench'
     FROM generate_series($1::int, $2::int) AS i`, [from, from + count - 1]);
try {
  let stored = 0;
  for (const total of [1_000_000, 3_000_000]) {
    await insert(stored, total - stored);
    stored = total;
    while (await flushRollupChunk(db.pool, 1_000_000, 0));
    await db.pool.query('VACUUM ANALYZE events');
    await db.pool.query('VACUUM ANALYZE rollup_minute');
    await db.pool.query('VACUUM ANALYZE rollup_hour_players');
    for (const round of [1, 2]) {
      const { rows } = await db.pool.query<{ s: string }>('SELECT coalesce(max(seq), 0) AS s FROM events');
      const before = Number(rows[0]?.s);
      await insert(stored, 50_000);
      stored += 50_000;
      const t0 = performance.now();
      await db.pool.query(upsertWindowsSql('hour', `SELECT DISTINCT hunt_id, date_trunc('hour', occurred_at, 'UTC') AS window_start FROM events WHERE seq > $1 AND seq <= $2`), [before, before + 50_000]);
      const rawMs = performance.now() - t0;
      const t1 = performance.now();
      await flushRollupChunk(db.pool, 50_000, 0);
      const chunkMs = performance.now() - t1;
      console.log(`hour holding ${stored - 50_000} events (100 hunts), round ${round}: hours from raw events ${rawMs.toFixed(0)} ms; whole chunk now (minutes, players, hours from minutes, watermark) ${chunkMs.toFixed(0)} ms`);
    }
  }
} finally {
  await db.pool.end();
  await resources.dispose();
}
