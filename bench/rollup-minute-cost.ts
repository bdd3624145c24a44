/**
 * What one rollupFlush chunk of 50,000 new events costs when the minute they fall in already
 * holds 1M and then 2M events (one hunt, 10,000 players): the minute re-aggregated from all
 * its raw events (as flushes did before migration 020, its statement alone) against the
 * whole chunk as it is now (events added to their minutes, players noted, hours from
 * minutes). `npx tsx bench/rollup-minute-cost.ts`; a database of its own, dropped at the end.
 * Results: bench/results/experiments-2026-12-06.md.
 */
import pg from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { loadConfig } from '../src/config';
import { flushRollupChunk, upsertWindowsSql } from '../src/store/batch/rollups';
import { BenchResources } from './lib/resources';

const config = loadConfig();
const resources = new BenchResources(config.databaseUrl, new Kafka({ brokers: config.kafka.brokers, logLevel: logLevel.NOTHING }));
const db = { pool: new pg.Pool({ connectionString: await resources.createDatabase('rollup_minute_cost') }) };
/** `count` events of hunt-0 in the minute from 10:00, spread over its 60 s. */
const insert = (from: number, count: number) => db.pool.query(
  `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source)
   SELECT 'e-' || i, 'hunt-0', 'p' || (i % 10000), 'clue.found',
          timestamptz '2026-11-21 10:00:00Z' + ((i % 60000) || ' milliseconds')::interval,
          jsonb_build_object('clueId', 'c' || (i % 20), 'points', i % 50), 'bench'
     FROM generate_series($1::int, $2::int) AS i`, [from, from + count - 1]);
const timed = async (work: () => Promise<unknown>) => {
  const t0 = performance.now();
  await work();
  return performance.now() - t0;
};
try {
  let stored = 0;
  for (const total of [1_000_000, 2_000_000]) {
    await insert(stored, total - stored);
    stored = total;
    while (await flushRollupChunk(db.pool, 1_000_000, 0));
    await db.pool.query('VACUUM ANALYZE events');
    await db.pool.query('VACUUM ANALYZE rollup_minute_players');
    for (const round of [1, 2]) {
      const { rows } = await db.pool.query<{ s: string }>('SELECT coalesce(max(seq), 0) AS s FROM events');
      const before = Number(rows[0]?.s);
      await insert(stored, 50_000);
      stored += 50_000;
      // The statement before migration 020, rolled back: the chunk below takes these events.
      const client = await db.pool.connect();
      const rawMs = await timed(async () => {
        await client.query('BEGIN');
        await client.query(upsertWindowsSql('minute', `SELECT DISTINCT hunt_id, date_trunc('minute', occurred_at, 'UTC') AS window_start FROM events WHERE seq > $1 AND seq <= $2`), [before, before + 50_000]);
      }).finally(() => client.query('ROLLBACK').finally(() => client.release()));
      const chunkMs = await timed(() => flushRollupChunk(db.pool, 50_000, 0));
      console.log(`minute holding ${stored - 50_000} events (1 hunt, 10,000 players), round ${round}: minute from raw events ${rawMs.toFixed(0)} ms; whole chunk now (minutes added to, players noted, hours from minutes, watermark) ${chunkMs.toFixed(0)} ms`);
    }
  }
  const { rows } = await db.pool.query(`SELECT events, players FROM rollup_minute`);
  console.log(`the minute's row: ${JSON.stringify(rows)} (${stored} events stored)`);
} finally {
  await db.pool.end();
  await resources.dispose();
}
