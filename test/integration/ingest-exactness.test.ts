/**
 * Exactly-once effect under failure (DESIGN invariants 1-3), against the real Kafka and
 * Postgres: whatever happens to the consumer or the database mid-stream, the projections
 * end equal to the reference fold of the accepted events, every accepted event is stored
 * once, and every invalid record is quarantined once.
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedPostgres } from '../../infra/postgres';
import { loadConfig, projectRoot } from '../../src/config';
import { foldEvents } from '../../src/rules/reference';
import { migrate } from '../../src/store/migrate';
import { createPool } from '../../src/store/pool';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { createTestTopics, projectionOf, startIngestProcess, waitCaughtUp, type IngestProcess } from '../helpers/ingest';
import { metricsOf, recordsRead } from '../helpers/ingest-faults';
import { inOrderTraffic, sendAtRate } from '../helpers/traffic';
import { uniqueName, waitFor } from '../helpers/wait';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

// A killed member is noticed after the session timeout; keep it short so restarts rebalance fast.
const FAST_FAILOVER = { INGEST_SESSION_TIMEOUT_MS: '6000' };

function track(ingest: IngestProcess): IngestProcess {
  cleanups.push(() => ingest.kill('SIGKILL'));
  return ingest;
}

async function expectExact(pool: pg.Pool, traffic: ReturnType<typeof inOrderTraffic>) {
  expect(await projectionOf(pool)).toEqual(foldEvents(traffic.events));
  const { rows } = await pool.query<{ events: number; quarantined: number; applied: number }>(
    `SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM quarantine) AS quarantined,
            (SELECT sum(events_applied)::int FROM hunts) AS applied`,
  );
  expect(rows[0]).toEqual({ events: traffic.events.length, quarantined: traffic.invalid, applied: traffic.events.length });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('exactly-once effect', () => {
  it('survives kill -9 of the consumer at random points and restarts', async () => {
    const db: TestDatabase = await createTestDatabase();
    cleanups.push(() => db.dispose());
    const topics = await createTestTopics(4);
    const traffic = inOrderTraffic(20_000, 1);
    let ingest = track(startIngestProcess(db.url, topics, FAST_FAILOVER));
    await ingest.ready();
    // Slow enough to go on through the kills (each takes a session timeout to be noticed):
    // at 4,000 a second the sending was over before the second life had joined.
    const sending = sendAtRate(topics.events, traffic.records, 800);

    for (let kill = 0; kill < 3; kill++) {
      // Killed while it consumes: once this life has read records, at a random moment after.
      const current = ingest;
      await waitFor('the consumer to read records', async () => recordsRead(await metricsOf(current)) > 0, { timeoutMs: 30_000, intervalMs: 100 });
      await sleep(Math.floor(Math.random() * 500));
      await ingest.kill('SIGKILL');
      ingest = track(startIngestProcess(db.url, topics, FAST_FAILOVER));
      await ingest.ready();
    }
    await sending;
    await waitCaughtUp(db.pool, topics);
    await expectExact(db.pool, traffic);
  });

  it('stays exact with two consumers in one group and rebalances mid-stream', async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.dispose());
    const topics = await createTestTopics(4);
    const traffic = inOrderTraffic(20_000, 2);
    const first = track(startIngestProcess(db.url, topics));
    await first.ready();
    const sending = sendAtRate(topics.events, traffic.records, 3500);

    await sleep(1500);
    const second = track(startIngestProcess(db.url, topics));
    await second.ready();
    await sleep(1500);
    expect(await first.kill('SIGTERM')).toBe(0); // graceful: finishes its batch, leaves the group
    await sending;
    await waitCaughtUp(db.pool, topics);
    await expectExact(db.pool, traffic);

    // Both members really held partitions: the second joined while the first was consuming.
    const joins = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"joined group"'));
    expect(joins(first.logFile).length).toBeGreaterThanOrEqual(2);
    expect(joins(second.logFile).some((l) => /"assigned":\[\d/.test(l))).toBe(true);
  });

  it('backs off while Postgres is stopped for 10 s, then catches up without loss or double count', async () => {
    // A Postgres of its own, so stopping it disturbs no other test.
    const stateDir = path.join(projectRoot, '.hunt', 'test-stacks', uniqueName('pg-outage'));
    const config = loadConfig({ ...process.env, HUNT_STATE_DIR: stateDir, HUNT_PG_PORT: '25433', DATABASE_URL: '' });
    const postgres = new EmbeddedPostgres(config);
    await postgres.up();
    cleanups.push(async () => {
      await postgres.down();
      fs.rmSync(stateDir, { recursive: true, force: true });
    });
    const pool = createPool(config);
    cleanups.push(() => pool.end());
    const client = await pool.connect();
    await migrate(client);
    client.release();

    const topics = await createTestTopics(4);
    const traffic = inOrderTraffic(16_000, 3);
    const ingest = track(startIngestProcess(config.databaseUrl, topics));
    await ingest.ready();
    const sending = sendAtRate(topics.events, traffic.records, 2000);

    await sleep(2000);
    await postgres.down();
    const outageStarted = Date.now();
    await waitFor('readiness to report Postgres down', async () => (await fetch(`${ingest.apiUrl}/readyz`)).status === 503);
    await sleep(10_000 - (Date.now() - outageStarted));
    expect(ingest.child.exitCode).toBeNull(); // it waited; it did not crash
    await postgres.up();

    await sending;
    await waitCaughtUp(pool, topics, 120_000);
    await expectExact(pool, traffic);
    expect(ingest.child.exitCode).toBeNull();
    const log = fs.readFileSync(ingest.logFile, 'utf8');
    const retries = log.split('\n').filter((line) => line.includes('micro-batch commit failed; retrying')).map((line) => JSON.parse(line) as { code?: unknown });
    expect(retries.length).toBeGreaterThan(0);
    // Named, so whoever is paged can tell an outage (a connection refused, a shutdown) from a setting.
    expect(retries.some((r) => typeof r.code === 'string')).toBe(true);
  });
});
