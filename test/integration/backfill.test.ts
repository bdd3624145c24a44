/**
 * The backfill job on the real Temporal server, worker, Postgres and Kafka: exact after a
 * worker kill -9 mid-run, idempotent when run twice or alongside the hot path, pausable,
 * resumable, cancellable, observable, and strict about its input.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { projectRoot } from '../../src/config';
import { foldEvents } from '../../src/rules/reference';
import type { BackfillProgress } from '../../workflows/backfill';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { createTestTopics, projectionOf, sendRecords, startIngestProcess, testKafka, waitCaughtUp } from '../helpers/ingest';
import { slowNextEventInsert } from '../helpers/slow-statement';
import { inOrderTraffic } from '../helpers/traffic';
import { uniqueName, waitFor } from '../helpers/wait';
import { startWorkerProcess, temporalClient, TEST_DATA_DIR, writeNdjson, type WorkerProcess } from '../helpers/worker';

const dataDir = path.join(projectRoot, '.hunt', 'test-data', uniqueName('backfill'));
let client: Client;
let closeClient: () => Promise<void>;
const workers: WorkerProcess[] = [];
const databases: TestDatabase[] = [];

beforeAll(async () => {
  ({ client, close: closeClient } = await temporalClient());
});
afterAll(async () => {
  for (const worker of workers) await worker.kill('SIGKILL');
  for (const db of databases) await db.dispose();
  await closeClient?.();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function setup(name: string, values: Buffer[]) {
  const db = await createTestDatabase();
  databases.push(db);
  const taskQueue = uniqueName(`backfill-${name}`);
  const file = path.join(dataDir, `${name}.ndjson`);
  writeNdjson(file, values);
  const worker = startWorkerProcess(db.url, taskQueue);
  workers.push(worker);
  return { db, taskQueue, file, worker };
}

const counts = async (db: TestDatabase) =>
  (
    await db.pool.query<{ events: number; quarantined: number }>(
      'SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM quarantine) AS quarantined',
    )
  ).rows[0];

describe('backfill', () => {
  it('imports 100,000 events exactly, through a worker kill -9 mid-run, and a second run changes nothing', async () => {
    const traffic = inOrderTraffic(100_000, 11);
    const { db, taskQueue, file, worker } = await setup('big', traffic.records.map((r) => r.value));
    const handle = await client.workflow.start('backfill', {
      taskQueue,
      workflowId: uniqueName('backfill-big'),
      args: [{ source: { kind: 'file', path: file }, chunkSize: 2000 }],
    });
    // Killed inside an activity call (10 chunks of 2,000), not at its start: heartbeats are
    // throttled (12 s), so the server holds the call's first chunk and the chunks committed
    // since are read again by the retry.
    await waitFor('the backfill to store 30,000 events', async () => ((await counts(db))?.events ?? 0) >= 30_000, {
      timeoutMs: 120_000,
      intervalMs: 20,
    });
    await worker.kill('SIGKILL');
    const before = (await counts(db))?.events ?? 0;
    expect(before).toBeLessThan(traffic.events.length); // really interrupted mid-run
    workers.push(startWorkerProcess(db.url, taskQueue));

    const result = await handle.result();
    expect(result.state).toBe('completed');
    // The totals agree with what was applied, though the retry re-read chunks the killed
    // attempt committed after its last heartbeat reached the server.
    expect(result.counts).toMatchObject({
      records: traffic.records.length,
      inserted: traffic.events.length,
      duplicates: traffic.records.length - traffic.invalid - traffic.events.length,
      rejected: traffic.invalid,
    });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(traffic.events));
    expect(await counts(db)).toEqual({ events: traffic.events.length, quarantined: traffic.invalid });

    const again = await client.workflow.execute('backfill', {
      taskQueue,
      workflowId: uniqueName('backfill-again'),
      args: [{ source: { kind: 'file', path: file }, chunkSize: 5000 }],
    });
    expect(again.counts).toMatchObject({ inserted: 0, records: traffic.records.length, rejected: traffic.invalid });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(traffic.events));
    expect(await counts(db)).toEqual({ events: traffic.events.length, quarantined: traffic.invalid });
  });

  it('does not double count events the hot path ingests at the same time', async () => {
    const events = orderIndependentEvents(6000);
    const values = events.map((e) => Buffer.from(JSON.stringify(e)));
    const { db, taskQueue, file } = await setup('concurrent', values);
    const topics = await createTestTopics(4);
    const ingest = startIngestProcess(db.url, topics);
    // The backfill's first chunk holds its rows uncommitted for 2 s while the hot path stores
    // the same events: they meet on the same eventIds, in flight, not one after the other.
    const slow = await slowNextEventInsert(db.pool, 2);
    try {
      await ingest.ready();
      const backfill = client.workflow.execute('backfill', {
        taskQueue,
        workflowId: uniqueName('backfill-concurrent'),
        args: [{ source: { kind: 'file', path: file }, chunkSize: 500 }],
      });
      await waitFor('the backfill\'s first chunk to hold its rows', async () => (await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()")).rows[0]?.n === 1, { timeoutMs: 60_000, intervalMs: 20 });
      await sendRecords(topics.events, events.map((e, i) => ({ key: e.huntId, value: values[i] as Buffer })));
      await backfill;
      await waitCaughtUp(db.pool, topics);
    } finally {
      await ingest.kill('SIGTERM');
      await slow.remove();
    }
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    expect(await counts(db)).toEqual({ events: events.length, quarantined: 0 });
    // Both stored some: the first chunk the backfill's, the rest the hot path's.
    const { rows } = await db.pool.query<{ origin: string; n: number }>("SELECT split_part(source, ':', 1) AS origin, count(*)::int AS n FROM events GROUP BY 1 ORDER BY 1");
    expect(rows.map((r) => r.origin)).toEqual(['backfill', 'kafka']);
  });

  it('pauses, resumes, reports progress and cancels cleanly', async () => {
    const traffic = inOrderTraffic(60_000, 12);
    const { db, taskQueue, file } = await setup('control', traffic.records.map((r) => r.value));
    const handle = await client.workflow.start('backfill', {
      taskQueue,
      workflowId: uniqueName('backfill-control'),
      args: [{ source: { kind: 'file', path: file }, chunkSize: 200 }],
    });
    const progress = () => handle.query<BackfillProgress>('progress');
    await waitFor('some progress', async () => (await progress()).counts.records > 0, { timeoutMs: 60_000 });

    await handle.signal('pause');
    await waitFor('the paused state', async () => (await progress()).state === 'paused');
    // Once the activity call in flight returns, nothing moves while paused.
    const settled = await waitFor('the in-flight call to finish', async () => {
      const a = await progress();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const b = await progress();
      return a.done === b.done ? b : undefined;
    });
    expect(settled).toMatchObject({ state: 'paused', total: fs.statSync(file).size });
    expect(settled.rate).toBeGreaterThan(0);
    expect(settled.cursor.file?.byteOffset).toBe(settled.done);

    await handle.signal('resume');
    await waitFor('progress after resume', async () => (await progress()).done > settled.done);
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    const stored = (await counts(db))?.events ?? 0;
    expect(stored).toBeGreaterThan(0);
    expect(stored).toBeLessThan(traffic.events.length);
  });

  it('imports a Kafka topic over a time range, exactly the records stamped inside it, whatever other records are stamped', async () => {
    const { db, taskQueue } = await setup('kafka', []);
    const topics = await createTestTopics(3);
    const events = orderIndependentEvents(3000);
    const send = (part: HuntEvent[]) => sendRecords(topics.events, part.map((e) => ({ key: e.huntId, value: JSON.stringify(e) })));
    await send(events.slice(0, 1000));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const from = new Date().toISOString();
    await send(events.slice(1000, 1500));
    // A producer's clock far ahead: a record stamped 2100 must not end the range where it lies.
    const future = orderIndependentEvents(1)[0]!;
    await sendRecords(topics.events, [{ key: future.huntId, value: JSON.stringify({ ...future, eventId: 'stamped-2100' }), timestamp: String(Date.parse('2100-01-01T00:00:00Z')) }]);
    await send(events.slice(1500, 2000));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const to = new Date().toISOString();
    await send(events.slice(2000));

    const middle = await client.workflow.execute('backfill', {
      taskQueue,
      workflowId: uniqueName('backfill-kafka'),
      args: [{ source: { kind: 'kafka', topic: topics.events, from, to }, chunkSize: 300 }],
    });
    // Read from the first record stamped at or after `from` to the end: 2,001 records, of
    // which the 1,000 stamped inside the window are imported.
    expect(middle).toMatchObject({ state: 'completed', total: 2001, done: 2001, counts: { records: 1000, inserted: 1000, outsideRange: 1001 } });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events.slice(1000, 2000)));

    const all = await client.workflow.execute('backfill', {
      taskQueue,
      workflowId: uniqueName('backfill-kafka-all'),
      args: [{ source: { kind: 'kafka', topic: topics.events } }],
    });
    expect(all).toMatchObject({ total: 3001, counts: { records: 3001, inserted: 2001, duplicates: 1000, outsideRange: 0 } });
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...events, { ...future, eventId: 'stamped-2100' }]));
  });

  it('fails, naming the topic, when its Kafka topic is deleted mid-import, instead of retrying for ever', async () => {
    const { db, taskQueue } = await setup('kafka-deleted', []);
    const topics = await createTestTopics(2);
    const events = orderIndependentEvents(20_000);
    await sendRecords(topics.events, events.map((e) => ({ key: e.huntId, value: JSON.stringify(e) })));
    const handle = await client.workflow.start('backfill', {
      taskQueue,
      workflowId: uniqueName('backfill-kafka-deleted'),
      // Small chunks: many activity calls, so the deletion lands mid-import.
      args: [{ source: { kind: 'kafka', topic: topics.events }, chunkSize: 100 }],
    });
    await waitFor('the import to be under way', async () => ((await counts(db))?.events ?? 0) >= 1000, { timeoutMs: 60_000 });
    const admin = testKafka().admin();
    await admin.connect();
    try {
      await admin.deleteTopics({ topics: [topics.events] });
    } finally {
      await admin.disconnect();
    }
    const failure = await handle.result().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(String((failure as WorkflowFailedError).cause?.cause)).toMatch(new RegExp(`Kafka topic ${topics.events.replace(/\./g, '\\.')} was deleted while the backfill read it`));
    expect((await counts(db))?.events).toBeLessThan(events.length); // it really was mid-import
  });

  it('keeps its attempt alive through a chunk that commits for longer than the heartbeat timeout', { timeout: 120_000 }, async () => {
    const traffic = inOrderTraffic(3000, 17);
    const { db, taskQueue, file } = await setup('slow-chunk', traffic.records.map((r) => r.value));
    // Once, a statement storing events takes 20 s: past the step's 15 s heartbeat timeout.
    const slow = await slowNextEventInsert(db.pool, 20);
    const handle = await client.workflow.start('backfill', { taskQueue, workflowId: uniqueName('backfill-slow'), args: [{ source: { kind: 'file', path: file } }] });
    const result = await handle.result();
    expect(result).toMatchObject({ state: 'completed', counts: { inserted: traffic.events.length, rejected: traffic.invalid } });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(traffic.events));
    expect(await slow.fired()).toBe(true);
    // Before, the attempt was timed out while its chunk committed, and retried from before it.
    const history = (await handle.fetchHistory()).events ?? [];
    const importScheduled = new Set(history.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'importChunks').map((e) => e.eventId?.toString()));
    const importAttempts = history.filter((e) => importScheduled.has(e.activityTaskStartedEventAttributes?.scheduledEventId?.toString())).map((e) => e.activityTaskStartedEventAttributes?.attempt);
    expect(importAttempts.length).toBeGreaterThan(0);
    expect(importAttempts.every((attempt) => attempt === 1)).toBe(true);
  });

  it('dry run reports what would change and writes nothing', async () => {
    const traffic = inOrderTraffic(3000, 13);
    const { db, taskQueue, file } = await setup('dry', traffic.records.map((r) => r.value));
    const result = await client.workflow.execute('backfill', {
      taskQueue,
      workflowId: uniqueName('backfill-dry'),
      args: [{ source: { kind: 'file', path: file }, dryRun: true }],
    });
    expect(result).toMatchObject({ state: 'completed', dryRun: true, counts: { inserted: traffic.events.length, rejected: traffic.invalid } });
    expect(await counts(db)).toEqual({ events: 0, quarantined: 0 });
  });

  it('fails fast on bad input, saying what to fix', async () => {
    const { taskQueue } = await setup('bad-input', []);
    const run = (input: unknown) =>
      client.workflow.execute('backfill', { taskQueue, workflowId: uniqueName('backfill-bad'), args: [input as never] });
    await expect(run({ source: { kind: 's3', path: '/x' } })).rejects.toThrow(WorkflowFailedError);
    const failure = await run({ source: { kind: 'file', path: 'relative.ndjson' } }).catch((err: WorkflowFailedError) => err);
    expect((failure as WorkflowFailedError).cause?.message).toMatch(/source\.path must be an absolute path/);
    const missing = await run({ source: { kind: 'file', path: path.join(TEST_DATA_DIR, 'no-such-file.ndjson') } }).catch((err: WorkflowFailedError) => err);
    // The check runs in an activity: the workflow's failure wraps the activity's.
    expect(String((missing as WorkflowFailedError).cause?.cause)).toMatch(/does not exist/);
    // Outside the import folder, whether or not the path exists, the same answer.
    const outside = await run({ source: { kind: 'file', path: '/no/such/file.ndjson' } }).catch((err: WorkflowFailedError) => err);
    expect(String((outside as WorkflowFailedError).cause?.cause)).toMatch(/is outside the import folder/);
  });

  it('reads only the topics BACKFILL_TOPICS lists, and does not tell whether another exists', async () => {
    const { taskQueue } = await setup('topics', []);
    const reasonOf = async (topic: string) => {
      const run = client.workflow.execute('backfill', { taskQueue, workflowId: uniqueName('backfill-topic'), args: [{ source: { kind: 'kafka', topic } }] });
      const failure = await run.then(
        () => undefined,
        (err: WorkflowFailedError) => err,
      );
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      return String(failure?.cause?.cause);
    };
    // The worker's BACKFILL_TOPICS is the tests' own topics (t-*); this one exists and is not one of them.
    const foreign = uniqueName('other');
    const admin = testKafka().admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic: foreign, numPartitions: 1 }], waitForLeaders: false });
      expect(await reasonOf(foreign)).toMatch(new RegExp(`Kafka topic ${foreign} is not one a backfill may read \\(BACKFILL_TOPICS: t-\\*\\)`));
      expect(await reasonOf(`${foreign}-missing`)).toMatch(/is not one a backfill may read/);
      expect(await reasonOf(uniqueName('t'))).toMatch(/does not exist/);
    } finally {
      await admin.deleteTopics({ topics: [foreign] }).catch(() => undefined);
      await admin.disconnect();
    }
  });
});

/** Events whose result does not depend on the order they are applied in: no contested keys. */
function orderIndependentEvents(count: number): HuntEvent[] {
  const base = Date.now() - 3_600_000;
  return Array.from({ length: count }, (_, i): HuntEvent => {
    const huntId = `hunt-${i % 3}`;
    const playerId = `p-${Math.floor(i / 3) % 200}`;
    const common = { eventId: `ev-${i}`, schemaVersion: 1 as const, huntId, playerId, occurredAt: new Date(base + i).toISOString() };
    return i % 10 === 0
      ? { ...common, type: 'treasure.claimed', payload: { treasureId: `t-${i}`, points: 100 } }
      : { ...common, type: 'clue.found', payload: { clueId: `c-${i}`, points: i % 50 } };
  });
}
