/**
 * The Kafka-range backfill's reader on a range larger than one fetch: it must move past
 * each fetch (kafkajs fetches from the last resolved offset), take at most what it is asked
 * for, and resume from the cursor it returns; records deleted under it are reported, and the
 * backfill step counts them.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { Partitioners, type Consumer, type ConsumerConfig, type Kafka } from 'kafkajs';
import { describe, expect, it, vi } from 'vitest';
import { consumeRange, KafkaReadStalledError, resolveRange, type DeletedRecords, type KafkaRange, type PartitionOffsets } from '../../src/batch/backfill/kafka-source';
import { KafkaRangeGoneError } from '../../src/batch/backfill/range-check';
import type { ChunkBatchResult } from '../../src/batch/backfill/types';
import { createBackfillActivities } from '../../src/batch/backfill-job';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';
import { createTestDatabase } from '../helpers/database';
import { clueFound, recordOf, T0_MS } from '../helpers/event-builders';
import { createTestTopics, sendRecords, testKafka, waitForLogEnd } from '../helpers/ingest';
import { uniqueName, waitFor } from '../helpers/wait';

/** The test Kafka, counting by partition every record kafkajs hands over to a reader's batches, taken or not. */
function countingKafka(): { kafka: Kafka; handedOver: Map<number, number> } {
  const handedOver = new Map<number, number>();
  const kafka = Object.assign(Object.create(testKafka()) as Kafka, {
    consumer(this: Kafka, config: ConsumerConfig): Consumer {
      const consumer = Object.getPrototypeOf(this).consumer(config) as Consumer;
      consumer.on(consumer.events.START_BATCH_PROCESS, ({ payload }) => void handedOver.set(payload.partition, (handedOver.get(payload.partition) ?? 0) + payload.batchSize));
      return consumer;
    },
  });
  return { kafka, handedOver };
}

/** consumeRange over `range`, failing after `timeoutMs` rather than waiting for ever. */
async function readAll(topic: string, range: KafkaRange, signal = new AbortController().signal, timeoutMs = 20_000, onSlice: (taken: number) => Promise<void> = async () => undefined) {
  let taken = 0;
  const offsets: bigint[] = [];
  const deleted: DeletedRecords[] = [];
  const read = consumeRange(testKafka(), topic, range.start, range, 1_000_000, async ({ messages }) => {
    taken += messages.length;
    for (const m of messages) offsets.push(BigInt(m.offset));
    await onSlice(taken);
  }, signal, undefined, (records) => deleted.push(records));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`consumeRange still waiting after ${timeoutMs} ms`)), timeoutMs)));
  try {
    const cursor: PartitionOffsets = await Promise.race([read, timeout]);
    return { cursor, taken, offsets, deleted };
  } finally {
    clearTimeout(timer);
  }
}

describe('consumeRange', () => {
  it('reads a range of many fetches in calls of at most maxRecords, resuming from its cursor', async () => {
    const topics = await createTestTopics(2);
    // 24,000 records of about 400 bytes: about 5 MB, many 1 MB fetches per partition.
    const padding = 'x'.repeat(380);
    await sendRecords(topics.events, Array.from({ length: 24_000 }, (_, i) => ({ key: `k${i % 7}`, value: `${i}:${padding}` })));
    // Counts every record kafkajs hands over to the reader, taken or not: a reader that fetched
    // the same records again and again would hand over many times the log.
    const { kafka, handedOver: byPartition } = countingKafka();
    const handedOver = () => [...byPartition.values()].reduce((n, count) => n + count, 0);
    const range = await resolveRange(kafka, topics.events, undefined);
    // The log's own count: a producer retry under load can write a batch twice.
    const inLog = Object.keys(range.end).reduce((n, p) => n + Number(BigInt(range.end[p] ?? '0') - BigInt(range.start[p] ?? '0')), 0);
    expect(inLog).toBeGreaterThanOrEqual(24_000);
    const seen = new Set<string>();
    let cursor = range.start;
    for (let call = 0; call < 3; call++) {
      let taken = 0;
      cursor = await consumeRange(kafka, topics.events, cursor, range, 10_000, async ({ messages }) => {
        taken += messages.length;
        for (const m of messages) seen.add(m.value?.toString().split(':')[0] ?? '');
      }, new AbortController().signal);
      expect(taken).toBe(call < 2 ? 10_000 : inLog - 20_000);
    }
    expect(seen.size).toBe(24_000);
    expect(cursor).toEqual(range.end);
    // Each call may leave the rest of its last fetches untaken, which the next fetches again:
    // at most one fetch per partition per call, far less than the log again.
    expect(handedOver()).toBeGreaterThanOrEqual(inLog);
    expect(handedOver()).toBeLessThan(2 * inLog);
  });

  it('fetches nothing of a partition whose part of the range is already read (there is none after `from`)', async () => {
    const topics = await createTestTopics(2);
    const padding = 'x'.repeat(380);
    const now = Date.now();
    // Partition 0: about 4 MB, all stamped before `from`, so done from the first call.
    // Partition 1: about 2 MB of the range, several fetches, during which partition 0 was read
    // from its log's start (a fresh group, fromBeginning) only to be thrown away.
    await sendRecords(topics.events, Array.from({ length: 10_000 }, (_, i) => ({ key: 'k', value: `before ${i}:${padding}`, partition: 0, timestamp: String(now - 3_600_000) })));
    await sendRecords(topics.events, Array.from({ length: 5000 }, (_, i) => ({ key: 'k', value: `${i}:${padding}`, partition: 1, timestamp: String(now) })));
    const { kafka, handedOver } = countingKafka();
    const range = await resolveRange(kafka, topics.events, now - 1_800_000);
    expect(range.start['0']).toBe(range.end['0']);
    expect(Number(range.end['0'])).toBeGreaterThanOrEqual(10_000);
    expect(range.start['1']).toBe('0');
    let taken = 0;
    const cursor = await consumeRange(kafka, topics.events, range.start, range, 1_000_000, async ({ partition, messages }) => {
      expect(partition).toBe(1);
      taken += messages.length;
    }, new AbortController().signal);
    expect(cursor).toEqual(range.end);
    expect(taken).toBe(Number(range.end['1']));
    expect(handedOver.get(0) ?? 0).toBe(0);
    expect(handedOver.get(1)).toBeGreaterThanOrEqual(taken);
  }, 60_000);

  it('ends a range that ends in an aborted transaction bigger than a fetch (kafkajs hands nothing over for it)', async () => {
    const topics = await createTestTopics(1);
    await sendRecords(topics.events, Array.from({ length: 100 }, (_, i) => ({ key: 'k', value: `${i}` })));
    const producer = testKafka().producer({ transactionalId: uniqueName('tx'), idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const transaction = await producer.transaction();
    const padding = 'x'.repeat(400);
    // Three producer batches of about 600 KB: more than one 1 MiB fetch, all of it aborted.
    for (let batch = 0; batch < 3; batch++) {
      await transaction.send({ topic: topics.events, messages: Array.from({ length: 1500 }, (_, i) => ({ key: 'k', value: `aborted ${batch}.${i} ${padding}` })) });
    }
    await transaction.abort();
    await producer.disconnect();
    await waitForLogEnd(topics.events, 100 + 3 * 1500 + 1); // the abort marker is in: the range ends past it

    const range = await resolveRange(testKafka(), topics.events, undefined);
    const { cursor, taken } = await readAll(topics.events, range);
    expect(taken).toBe(100);
    expect(cursor).toEqual(range.end);
  });

  it('ends a range whose records retention deleted before they were read', async () => {
    const topics = await createTestTopics(1);
    await sendRecords(topics.events, Array.from({ length: 50 }, (_, i) => ({ key: 'k', value: `${i}` })));
    const range = await resolveRange(testKafka(), topics.events, undefined);
    await deleteRecordsBefore(topics.events, 50);
    const { cursor, taken, deleted } = await readAll(topics.events, range);
    expect(taken).toBe(0);
    expect(deleted).toEqual([{ partition: 0, from: 0n, to: 50n }]);
    expect(cursor).toEqual(range.end);
  });

  it('says which records were deleted under it while it read, and reads on from the log\'s new start', async () => {
    const topics = await createTestTopics(1);
    // About 2 MB: many fetches, so the deletion lands while the rest is unread.
    const padding = 'x'.repeat(400);
    await sendRecords(topics.events, Array.from({ length: 5000 }, (_, i) => ({ key: 'k', value: `${i}:${padding}` })));
    const range = await resolveRange(testKafka(), topics.events, undefined);
    let deletedUpTo: bigint | undefined;
    const { cursor, offsets, deleted } = await readAll(topics.events, range, undefined, 40_000, async () => {
      if (deletedUpTo !== undefined) return;
      await deleteRecordsBefore(topics.events, 4000);
      deletedUpTo = 4000n;
    });
    expect(cursor).toEqual(range.end);
    // Every offset of the range is either read or reported deleted, once.
    expect(deleted).toHaveLength(1);
    const [gap] = deleted as [DeletedRecords];
    expect(gap.partition).toBe(0);
    expect(gap.to).toBe(deletedUpTo);
    expect(offsets.filter((o) => o >= gap.from && o < gap.to)).toEqual([]);
    expect(offsets.length + Number(gap.to - gap.from)).toBe(Number(range.end['0']));
    expect(new Set(offsets).size).toBe(offsets.length);
  }, 60_000);

  it('lets go when its signal aborts while no records come', async () => {
    const topics = await createTestTopics(1);
    await withOpenTransactionAfterOne(topics.events, 5, async () => {
      const range = { start: { '0': '0' }, end: { '0': '6' } };
      const abort = new AbortController();
      // Aborted once it has taken the record that comes and waited a while for the rest (a
      // fixed second from the start aborted before the first record on a slow group join).
      const onSlice = async () => void setTimeout(() => abort.abort(), 1000);
      const { cursor, taken } = await readAll(topics.events, range, abort.signal, 30_000, onSlice);
      expect(taken).toBe(1);
      expect(cursor).toEqual({ '0': '1' });
    });
  });

  it('fails, rather than waits for ever, when it takes nothing for its stall limit while the topic is readable', async () => {
    const topics = await createTestTopics(1);
    // As above, a range whose last records never come; no signal aborts this time. Before, the
    // read stopped heartbeating and waited: the server timed the attempt out, but the attempt
    // never learnt it and held its consumer and worker slot for as long as Kafka stayed stuck.
    await withOpenTransactionAfterOne(topics.events, 1, async () => {
      let taken = 0;
      let waits = 0;
      const started = Date.now();
      const failure = await consumeRange(testKafka(), topics.events, { '0': '0' }, { start: { '0': '0' }, end: { '0': '2' } }, 1000, async ({ messages }) => void (taken += messages.length), new AbortController().signal, () => waits++, undefined, 3000).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(KafkaReadStalledError);
      expect(String(failure)).toMatch(new RegExp(`consumer of ${topics.events} took no record of its range for [3-6] s \\(partitions still open: 0\\)`));
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(taken).toBe(1);
      expect(waits).toBeGreaterThan(0); // it heartbeat while it waited
    });
  }, 30_000);

  it('leaves nothing behind when its consumer cannot connect, and lets no crash of it be restarted by kafkajs', async () => {
    const topics = await createTestTopics(1);
    await sendRecords(topics.events, [{ key: 'k', value: '0:x' }]);
    const kafka = testKafka();
    const configs: ConsumerConfig[] = [];
    // A consumer whose connect fails (Kafka gone between the range check and the read).
    const failing = Object.assign(Object.create(kafka) as Kafka, {
      consumer: (config: ConsumerConfig) => {
        configs.push(config);
        const consumer = kafka.consumer(config);
        return Object.assign(Object.create(consumer) as Consumer, { connect: async () => Promise.reject(new Error('connect ECONNREFUSED')) });
      },
    });
    const intervals = new Set<unknown>();
    const setSpy = vi.spyOn(globalThis, 'setInterval');
    const clearSpy = vi.spyOn(globalThis, 'clearInterval');
    try {
      const failure = await consumeRange(failing, topics.events, { '0': '0' }, { start: { '0': '0' }, end: { '0': '1' } }, 1000, async () => undefined, new AbortController().signal).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(String(failure)).toMatch(/ECONNREFUSED/);
      for (const result of setSpy.mock.results) intervals.add(result.value);
      for (const [timer] of clearSpy.mock.calls) intervals.delete(timer);
      // Before, the sweep's interval was set before the connect and cleared only after it: a
      // connect that failed left it running for the life of the worker.
      expect(intervals.size).toBe(0);
    } finally {
      setSpy.mockRestore();
      clearSpy.mockRestore();
    }
    // A crash ends the attempt (its step retries with a new consumer): a restart kafkajs was
    // making when the attempt ended was out of reach of disconnect(), joined later and fetched
    // for the life of the worker.
    expect(configs).toHaveLength(1);
    expect(await configs[0]!.retry?.restartOnFailure?.(new Error('the cluster went away'))).toBe(false);
  });

  it('fails, naming the topic, when the topic is deleted while it reads (it does not wait for ever, nor create the topic again)', async () => {
    const topics = await createTestTopics(1);
    // About 2 MB: more than one 1 MiB fetch, so the read goes on after the deletion.
    const padding = 'x'.repeat(400);
    await sendRecords(topics.events, Array.from({ length: 5000 }, (_, i) => ({ key: 'k', value: `${i}:${padding}` })));
    const range = await resolveRange(testKafka(), topics.events, undefined);
    let deleted = false;
    const failure = await readAll(topics.events, range, undefined, 40_000, async () => {
      if (deleted) return;
      deleted = true;
      await deleteTopic(topics.events);
    }).then(() => undefined, (err: unknown) => err);
    expect(failure).toBeInstanceOf(KafkaRangeGoneError);
    expect(String(failure)).toMatch(new RegExp(`Kafka topic ${topics.events} was deleted while the backfill read it`));
    expect(await topicExists(topics.events)).toBe(false);
  }, 60_000);

  it('fails when the topic was deleted and created again under the job: its log now ends before the range did', async () => {
    const topics = await createTestTopics(1);
    await sendRecords(topics.events, Array.from({ length: 300 }, (_, i) => ({ key: 'k', value: `${i}` })));
    const range = await resolveRange(testKafka(), topics.events, undefined);
    const cursor = await consumeRange(testKafka(), topics.events, range.start, range, 100, async () => undefined, new AbortController().signal);
    expect(cursor).toEqual({ '0': '100' });
    await deleteTopic(topics.events);
    const admin = testKafka().admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: topics.events, numPartitions: 1 }] });
    await admin.disconnect();
    await sendRecords(topics.events, Array.from({ length: 150 }, (_, i) => ({ key: 'k', value: `new ${i}` })));
    let taken = 0;
    const read = consumeRange(testKafka(), topics.events, cursor, range, 1000, async ({ messages }) => void (taken += messages.length), new AbortController().signal);
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('consumeRange still waiting after 30 s')), 30_000));
    const failure = await Promise.race([read, timeout]).then(() => undefined, (err: unknown) => err);
    expect(failure).toBeInstanceOf(KafkaRangeGoneError);
    expect(String(failure)).toMatch(/partition 0 now ends at offset 150, before the end of the backfill's range \(300, read up to 100\)/);
    expect(taken).toBe(0); // nothing of the new topic was taken for the old one's records
  }, 60_000);
});

/**
 * One committed record on partition 0, then `open` records of a transaction left open while
 * `run` runs: a range to their end waits for records that do not come (a read-committed
 * consumer gets nothing past the open transaction's start).
 */
async function withOpenTransactionAfterOne(topic: string, open: number, run: () => Promise<void>): Promise<void> {
  await sendRecords(topic, [{ key: 'k', value: '0' }]);
  const producer = testKafka().producer({ transactionalId: uniqueName('tx'), idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const transaction = await producer.transaction();
  await transaction.send({ topic, messages: Array.from({ length: open }, (_, i) => ({ key: 'k', value: `open ${i}` })) });
  try {
    await run();
  } finally {
    await transaction.abort();
    await producer.disconnect();
  }
}

/** Deletes partition 0's records before `offset`, as retention or `kafka-delete-records` does. */
async function deleteRecordsBefore(topic: string, offset: number): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: String(offset) }] });
  } finally {
    await admin.disconnect();
  }
}

async function deleteTopic(topic: string): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [topic] });
    await waitFor('the topic to be gone', async () => !(await admin.listTopics()).includes(topic), { timeoutMs: 30_000, intervalMs: 100 });
  } finally {
    await admin.disconnect();
  }
}

async function topicExists(topic: string): Promise<boolean> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).includes(topic);
  } finally {
    await admin.disconnect();
  }
}

describe('the Kafka backfill step over a range of which records were deleted before it read them', () => {
  it('counts them as deletedBeforeRead in its result and heartbeat, imports the rest, and ends at the range\'s end', async () => {
    const topics = await createTestTopics(1);
    const events = Array.from({ length: 50 }, (_, i) =>
      clueFound({ eventId: `deleted-${i}`, huntId: 'hunt-d', playerId: `p${i % 5}`, occurredAt: new Date(T0_MS + i * 1000).toISOString(), clueId: `c${i}`, points: 10 }),
    );
    await sendRecords(topics.events, events.map((e) => ({ key: e.huntId, value: recordOf(e) })));
    // The job fixed its range before the deletion (as describeBackfillSource does at its start).
    const range = await resolveRange(testKafka(), topics.events, undefined);
    await deleteRecordsBefore(topics.events, 20);

    const db = await createTestDatabase();
    try {
      const config = loadConfig({ BACKFILL_TOPICS: topics.events });
      const activities = createBackfillActivities({ pool: db.pool, kafka: testKafka(), config, logger: createLogger({ logLevel: 'silent' }) });
      const attempt = new MockActivityEnvironment();
      const beats: ChunkBatchResult[] = [];
      attempt.on('heartbeat', (details: ChunkBatchResult) => beats.push(details));
      const input = { jobId: uniqueName('deleted'), source: { kind: 'kafka' as const, topic: topics.events }, cursor: { kafka: range.start }, chunkSize: 100, maxChunks: 10, dryRun: false, range };
      const result = await attempt.run(activities.importChunks, input);
      expect(result).toMatchObject({ done: true, position: 50, cursor: { kafka: { '0': '50' } }, counts: { records: 30, inserted: 30, deletedBeforeRead: 20 } });
      // The heartbeat that reported the loss had moved the cursor past it: a retry counts it once.
      expect(beats.find((b) => (b.counts.deletedBeforeRead ?? 0) > 0)).toMatchObject({ cursor: { kafka: { '0': '20' } }, counts: { deletedBeforeRead: 20, records: 0 } });
      expect(Number((await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM events WHERE hunt_id = 'hunt-d'`)).rows[0]?.n)).toBe(30);
    } finally {
      await db.dispose();
    }
  }, 60_000);
});
