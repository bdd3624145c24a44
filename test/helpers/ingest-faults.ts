/**
 * What the hot path's fault tests share (ingest-faults, ingest-outages): databases and
 * `hunt ingest` processes cleaned up after the file's tests, events and records to send,
 * and what to read back (stored positions, /readyz, /metrics).
 */
import fs from 'node:fs';
import pg from 'pg';
import { afterAll, expect } from 'vitest';
import { loadConfig } from '../../src/config';
import type { HuntEvent } from '../../src/events/schema';
import { adminConnectionString, createTestDatabase, type TestDatabase } from './database';
import { clueFound, recordOf } from './event-builders';
import { sendRecords, startIngestProcess, testKafka, type IngestProcess, type TestTopics } from './ingest';
import { waitFor } from './wait';

/** Databases and processes made by the file's tests, dropped and killed after them (call at the file's top level). */
export function useIngestFaultKit() {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  async function database(): Promise<TestDatabase> {
    const db = await createTestDatabase();
    cleanups.push(() => db.dispose());
    return db;
  }
  function track(ingest: IngestProcess): IngestProcess {
    cleanups.push(() => ingest.kill('SIGKILL'));
    return ingest;
  }
  /** `hunt ingest` on the test's database and topics, ready, killed after the file's tests. */
  async function runIngest(db: TestDatabase, topics: TestTopics, env?: Record<string, string>): Promise<IngestProcess> {
    const ingest = track(startIngestProcess(db.url, topics, env));
    await ingest.ready();
    return ingest;
  }
  /** Waits until the position stored for partition 0 is `offset`. */
  const waitStored = (db: TestDatabase, topics: TestTopics, offset: bigint, what: string) =>
    waitFor(what, async () => (await storedOffset(db, topics)) === offset, { timeoutMs: 30_000, intervalMs: 200 });
  /** Runs `cleanup` after the file's tests (before the databases are dropped). */
  const onCleanup = (cleanup: () => Promise<unknown>) => void cleanups.push(cleanup);
  return { database, track, runIngest, waitStored, onCleanup };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The process took no log for reset: none logged, none counted. */
export async function expectNoLogReset(ingest: IngestProcess): Promise<void> {
  expect(fs.readFileSync(ingest.logFile, 'utf8')).not.toMatch(/is not the one applied there|reading it again from offset/);
  expect(await metricsOf(ingest)).not.toMatch(/hunt_ingest_log_resets_total\{[^}]*\} [1-9]/);
}

const base = Date.now() - 3_600_000;
export function eventsFor(prefix: string, count: number, from = 0): HuntEvent[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return clueFound({ eventId: `${prefix}-${i}`, huntId: `hunt-${i % 5}`, playerId: `p${i % 17}`, clueId: `c${i}`, points: i % 20, occurredAt: new Date(base + i).toISOString() });
  });
}
export const asRecords = (events: HuntEvent[]) => events.map((e) => ({ key: e.huntId, value: recordOf(e) }));
export const send = (topic: string, events: HuntEvent[]) => sendRecords(topic, asRecords(events));

/** Runs SQL on the cluster's maintenance database (ALTER DATABASE, pg_terminate_backend). */
export async function asAdmin(sql: string, values: unknown[] = []): Promise<void> {
  const admin = new pg.Client({ connectionString: adminConnectionString(loadConfig().databaseUrl) });
  await admin.connect();
  try {
    await admin.query(sql, values);
  } finally {
    await admin.end();
  }
}
export const dropConnections = (db: TestDatabase) =>
  asAdmin('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [db.name]);

export async function readyz(ingest: IngestProcess): Promise<{ status: number; body: { error?: string } }> {
  const res = await fetch(`${ingest.apiUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { error?: string } };
}
export const metricsOf = async (ingest: IngestProcess) => (await fetch(`${ingest.apiUrl}/metrics`)).text();
export const recordsRead = (metrics: string) => Number(/^hunt_ingest_records_read_total (\d+)$/m.exec(metrics)?.[1] ?? 0);

export async function eventCount(db: TestDatabase): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
  return rows[0]?.n ?? 0;
}

export async function storedOffset(db: TestDatabase, topics: { events: string; groupId: string }): Promise<bigint | undefined> {
  const { rows } = await db.pool.query<{ next_offset: string }>(
    'SELECT next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2 AND partition = 0',
    [topics.groupId, topics.events],
  );
  return rows[0] ? BigInt(rows[0].next_offset) : undefined;
}

/** Deletes `topic` and creates it again with one partition (deletion finishes in the background: retried until the name is free). */
export async function recreateTopic(topic: string): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [topic] });
    await waitFor(`${topic} to be created again`, async () =>
      admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true }).then(() => true, () => false),
    { timeoutMs: 30_000, intervalMs: 500 });
  } finally {
    await admin.disconnect();
  }
}

