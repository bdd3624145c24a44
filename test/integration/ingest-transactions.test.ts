/**
 * Input written by transactional producers (Kafka Streams, Flink, Connect with exactly-once,
 * kafkajs transactions), on the real Kafka and Postgres. A commit or abort leaves a control
 * record in the log, and an aborted transaction leaves records a read-committed consumer must
 * not see; kafkajs steps over both without handing them to the consumer. The partition must
 * still move on: past a marker followed by a producer batch too big to share a fetch with it
 * (the marker ends a fetch: batch-handler's offsetAfter), past an aborted transaction bigger
 * than a fetch (a fetch of nothing else: filtered-records.ts), and, when the marker is the
 * last thing in the log, to the log end (or the partition would look stalled while idle).
 * Two aborted transactions that nest must both be dropped (kafkajs did not: patches/).
 */
import { Partitioners } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { clueFound, recordOf } from '../helpers/event-builders';
import { createTestTopics, endOffsets, projectionOf, startIngestProcess, testKafka, waitCaughtUp, waitForLogEnd, type IngestProcess, type TestTopics } from '../helpers/ingest';
import { uniqueName } from '../helpers/wait';

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

/** Small fetches, so a producer batch of a few hundred events does not fit in one with the marker. */
const PARTITION_FETCH_BYTES = 16 * 1024;
const STALL_LIMIT_MS = 2000;

async function setup(): Promise<{ db: TestDatabase; topics: TestTopics; ingest: IngestProcess }> {
  const db = await createTestDatabase();
  cleanups.push(() => db.dispose());
  const topics = await createTestTopics(1);
  const ingest = startIngestProcess(db.url, topics, {
    KAFKA_PARTITION_FETCH_MAX_BYTES: String(PARTITION_FETCH_BYTES),
    KAFKA_FETCH_MAX_BYTES: String(PARTITION_FETCH_BYTES),
    INGEST_STALL_LIMIT_MS: String(STALL_LIMIT_MS),
  });
  cleanups.push(() => ingest.kill('SIGKILL'));
  await ingest.ready();
  return { db, topics, ingest };
}

const base = Date.now() - 3_600_000;
function eventsFor(prefix: string, count: number): HuntEvent[] {
  return Array.from({ length: count }, (_, i) =>
    clueFound({ eventId: `${prefix}-${i}`, huntId: `hunt-${i % 3}`, playerId: `p${i % 11}`, clueId: `${prefix}c${i}`, points: 1 + (i % 20), occurredAt: new Date(base + i).toISOString() }),
  );
}
const messagesOf = (events: HuntEvent[]) => events.map((e) => ({ key: e.huntId, value: recordOf(e) }));

/**
 * Sends `events` in ONE transaction (one producer batch: one send), then commits or aborts it,
 * and returns once the marker is in the log (the topic has one partition): a read-committed
 * end taken before that would stop short of the transaction.
 */
async function sendInTransaction(topic: string, events: HuntEvent[], outcome: 'commit' | 'abort'): Promise<void> {
  const endBefore = await endOffsets(topic);
  const producer = testKafka().producer({
    transactionalId: uniqueName('tx'),
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  try {
    const transaction = await producer.transaction();
    await transaction.send({ topic, messages: messagesOf(events) });
    await (outcome === 'commit' ? transaction.commit() : transaction.abort());
  } finally {
    await producer.disconnect();
  }
  await waitForLogEnd(topic, endBefore + events.length + 1);
}

function transactionalProducer() {
  return testKafka().producer({ transactionalId: uniqueName('tx'), idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
}

async function sendPlain(topic: string, events: HuntEvent[]): Promise<void> {
  const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic, messages: messagesOf(events) });
  } finally {
    await producer.disconnect();
  }
}

async function storedAndQuarantined(db: TestDatabase): Promise<{ events: number; quarantined: number }> {
  const { rows } = await db.pool.query<{ events: number; quarantined: number }>(
    'SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM quarantine) AS quarantined',
  );
  return rows[0]!;
}

describe('input from transactional producers', () => {
  it('moves past a commit marker followed by a producer batch bigger than a fetch', async () => {
    const { db, topics } = await setup();
    const small = eventsFor('tx-small', 5);
    const big = eventsFor('tx-big', 400); // about 100 KB in one producer batch: more than a fetch
    await sendInTransaction(topics.events, small, 'commit');
    await sendPlain(topics.events, big);
    await waitCaughtUp(db.pool, topics, 30_000);
    expect(await storedAndQuarantined(db)).toEqual({ events: small.length + big.length, quarantined: 0 });
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...small, ...big]));
  });

  it('skips an aborted transaction bigger than a fetch and applies what follows it', async () => {
    const { db, topics, ingest } = await setup();
    const aborted = eventsFor('tx-aborted', 400);
    const after = eventsFor('tx-after', 50);
    await sendInTransaction(topics.events, aborted, 'abort');
    await sendPlain(topics.events, after);
    await waitCaughtUp(db.pool, topics, 30_000);
    expect(await storedAndQuarantined(db)).toEqual({ events: after.length, quarantined: 0 });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(after));
    // The aborted producer batch came as a fetch of its own and was passed unseen, and counted
    // (the marker after it may have come with the records that follow).
    const metrics = await (await fetch(`${ingest.apiUrl}/metrics`)).text();
    const passed = Number(/hunt_ingest_filtered_records_passed_total\{topic="[^"]+",partition="0"\} (\d+)/.exec(metrics)?.[1]);
    expect(passed).toBeGreaterThanOrEqual(aborted.length);
    expect(passed).toBeLessThanOrEqual(aborted.length + 1);
  });

  it('applies nothing of an aborted transaction whose first record has the key 00 00 00 00 (what an abort marker carries)', async () => {
    const { db, topics } = await setup();
    const aborted = eventsFor('tx-fake-marker', 3);
    const after = eventsFor('tx-fake-marker-after', 10);
    const endBefore = await endOffsets(topics.events);
    const producer = transactionalProducer();
    await producer.connect();
    try {
      const transaction = await producer.transaction();
      // Before the patch, kafkajs took this data record for the abort marker and let the rest through.
      const messages = messagesOf(aborted).map((m, i) => (i === 0 ? { ...m, key: Buffer.from([0, 0, 0, 0]) } : m));
      await transaction.send({ topic: topics.events, messages });
      await transaction.abort();
    } finally {
      await producer.disconnect();
    }
    await waitForLogEnd(topics.events, endBefore + aborted.length + 1);
    await sendPlain(topics.events, after);
    await waitCaughtUp(db.pool, topics, 30_000);
    expect(await storedAndQuarantined(db)).toEqual({ events: after.length, quarantined: 0 });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(after));
  });

  it('applies nothing of two aborted transactions that nest (the broker lists them by where they end, not where they start)', async () => {
    const { db, topics } = await setup();
    const outer = eventsFor('tx-outer', 3);
    const inner = eventsFor('tx-inner', 3);
    const after = eventsFor('tx-nested-after', 10);
    const [outerProducer, innerProducer] = [transactionalProducer(), transactionalProducer()];
    await Promise.all([outerProducer.connect(), innerProducer.connect()]);
    try {
      // Offsets: outer 0-2, inner 3-5, the inner abort marker 6, the outer one 7.
      const outerTx = await outerProducer.transaction();
      await outerTx.send({ topic: topics.events, messages: messagesOf(outer) });
      const innerTx = await innerProducer.transaction();
      await innerTx.send({ topic: topics.events, messages: messagesOf(inner) });
      await innerTx.abort();
      await outerTx.abort();
    } finally {
      await Promise.all([outerProducer.disconnect(), innerProducer.disconnect()]);
    }
    await waitForLogEnd(topics.events, outer.length + inner.length + 2);
    await sendPlain(topics.events, after);
    await waitCaughtUp(db.pool, topics, 30_000);
    expect(await storedAndQuarantined(db)).toEqual({ events: after.length, quarantined: 0 });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(after));
  });

  it('stores the offset past a commit marker that ends the log, and stays ready while idle', async () => {
    const { db, topics, ingest } = await setup();
    const events = eventsFor('tx-last', 20);
    await sendInTransaction(topics.events, events, 'commit');
    // The log ends with the marker: caught up means the stored offset is past it.
    await waitCaughtUp(db.pool, topics, 30_000);
    // Stored, not quarantined, and no offset past them before they were: a silent skip shows as 0 and 0.
    expect(await storedAndQuarantined(db)).toEqual({ events: events.length, quarantined: 0 });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    // Idle for longer than the stall limit (plus the monitor's interval): nothing is waiting, so nothing is stalled.
    await new Promise((resolve) => setTimeout(resolve, STALL_LIMIT_MS + 2000));
    const readyz = await fetch(`${ingest.apiUrl}/readyz`);
    expect(readyz.status).toBe(200);
  });

  it('says which partition waits behind a transaction left open, and applies what it held once it ends', async () => {
    const { db, topics, ingest } = await setup();
    const before = eventsFor('open-before', 5);
    await sendPlain(topics.events, before);
    await waitCaughtUp(db.pool, topics, 30_000);
    // A producer begins a transaction and goes quiet; the records after it cannot be read
    // committed, and the lag against the committed end says nothing is waiting.
    const producer = transactionalProducer();
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const transaction = await producer.transaction();
    await transaction.send({ topic: topics.events, messages: messagesOf(eventsFor('open-held-tx', 1)) });
    const after = eventsFor('open-after', 3);
    await sendPlain(topics.events, after);
    let reason = '';
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !/wait behind a transaction/.test(reason)) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const readyz = await fetch(`${ingest.apiUrl}/readyz`);
      reason = readyz.status === 503 ? String(((await readyz.json()) as { error?: string }).error) : '';
    }
    expect(reason).toMatch(/partition\(s\) 0 \(records from offset 5 to 9, \d+ s\) wait behind a transaction a producer has left open/);
    expect(await storedAndQuarantined(db)).toEqual({ events: before.length, quarantined: 0 });

    await transaction.abort();
    // The held record, the three after it and the abort marker: until the marker is in, the
    // stable end stays at offset 5, which the group has already stored.
    await waitForLogEnd(topics.events, before.length + 1 + after.length + 1);
    await waitCaughtUp(db.pool, topics, 30_000);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...before, ...after]));
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await fetch(`${ingest.apiUrl}/readyz`)).status).toBe(200);
  });
});

