/**
 * Ceiling 1: how fast kafkajs alone reads the backlog, with the same fetch settings the
 * ingest uses, and eachBatch doing nothing. Optionally (`classify`) each batch also goes
 * through the hot path's decode and validation (classifySlice), which tells how much of a
 * core the Node side spends before Postgres is involved.
 */
import type { Kafka } from 'kafkajs';
import type { Config } from '../src/config';
import { rowCount } from '../src/store/hot-path/event-rows';
import { classifySlice } from '../src/pipeline/classify';

export interface ReadOptions {
  topic: string;
  groupId: string;
  records: number;
  ingest: Config['ingest'];
  classify: boolean;
  timeoutMs?: number;
}

export interface ReadResult {
  records: number;
  accepted: number;
  seconds: number;
  eventsPerSecond: number;
}

export async function readTopic(kafka: Kafka, options: ReadOptions): Promise<ReadResult> {
  const consumer = kafka.consumer({
    groupId: options.groupId,
    maxBytes: options.ingest.fetchMaxBytes,
    maxBytesPerPartition: options.ingest.partitionFetchMaxBytes,
  });
  let records = 0;
  let accepted = 0;
  let started: number | undefined;
  let firstBatchRecords = 0;
  let finished = 0;
  let done: () => void = () => undefined;
  const allRead = new Promise<void>((resolve) => (done = resolve));
  const timeout = setTimeout(() => done(), options.timeoutMs ?? 10 * 60_000);

  await consumer.connect();
  await consumer.subscribe({ topic: options.topic, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: options.ingest.partitionsConcurrency,
    eachBatch: async ({ batch }) => {
      // Timed from the first batch, so connecting and joining the group do not count.
      if (started === undefined) {
        started = performance.now();
        firstBatchRecords = batch.messages.length;
      }
      if (options.classify) accepted += rowCount(classifySlice(batch.topic, batch.partition, batch.messages, new Date()).rows);
      records += batch.messages.length;
      if (records >= options.records && finished === 0) {
        finished = performance.now();
        done();
      }
    },
  });
  await allRead;
  clearTimeout(timeout);
  await consumer.disconnect();
  const end = finished || performance.now();
  // The first batch's records arrived before the clock started; leave them out of the rate.
  const seconds = (end - (started ?? end)) / 1000;
  return { records, accepted, seconds, eventsPerSecond: Math.round((records - firstBatchRecords) / seconds) };
}
