/**
 * Helpers for hot-path tests: the real `hunt ingest` as a child process (so it can be
 * killed with SIGKILL), topics of their own, and reading back what Postgres holds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel, Partitioners, type IHeaders } from 'kafkajs';
import type pg from 'pg';
import { loadConfig, projectRoot } from '../../src/config';
import { DLQ_HEADROOM_BYTES } from '../../src/ingest/topics';
import { uniqueName, waitFor } from './wait';
import { readProjection } from '../../src/store/read/projection';

/** The broker's default message.max.bytes: what a topic created without overrides accepts. */
export const BROKER_MAX_MESSAGE_BYTES = 1_048_588;

const config = loadConfig();

export function testKafka(): Kafka {
  return new Kafka({ clientId: 'hunt-tests', brokers: config.kafka.brokers, logLevel: logLevel.NOTHING });
}

export interface TestTopics {
  events: string;
  dlq: string;
  groupId: string;
}

export async function createTestTopics(partitions = 4): Promise<TestTopics> {
  const base = uniqueName('t');
  const topics = { events: `${base}.events`, dlq: `${base}.dlq`, groupId: `${base}-group` };
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [
        { topic: topics.events, numPartitions: partitions },
        // Sized as `hunt ingest` would create it: room for a copy of the input's largest record.
        { topic: topics.dlq, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: String(BROKER_MAX_MESSAGE_BYTES + DLQ_HEADROOM_BYTES) }] },
      ],
      // Not createTopics' own wait (on by default): on a broker just started, its metadata
      // request can answer "does not host this topic-partition" for a moment, which it does
      // not retry.
      waitForLeaders: false,
    });
    await waitFor('the test topics to have leaders', async () => {
      const { topics: metadata } = await admin.fetchTopicMetadata({ topics: [topics.events, topics.dlq] }).catch(() => ({ topics: [] }));
      return metadata.length === 2 && metadata.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
    }, { timeoutMs: 30_000, intervalMs: 200 });
  } finally {
    await admin.disconnect();
  }
  return topics;
}

/**
 * `timestamp` (ms since the epoch, as kafkajs takes it) sets the record's Kafka timestamp; the
 * producer's clock otherwise. `partition` sends it there whatever its key.
 */
export async function sendRecords(topic: string, records: { key: string | Buffer | null; value: Buffer | string | null; timestamp?: string; partition?: number }[]) {
  const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    for (let i = 0; i < records.length; i += 1000) {
      await producer.send({ topic, messages: records.slice(i, i + 1000) });
    }
  } finally {
    await producer.disconnect();
  }
}

export async function endOffsets(topic: string, kafka: Kafka = testKafka()): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Waits until the topic's end, as a read-committed reader sees it, reaches `atLeast` records.
 * A transactional producer's commit or abort returns before the coordinator has written the
 * markers into the partitions; until then the partition's stable end stays before the
 * transaction, so endOffsets (and waitCaughtUp) would see a shorter log than the test wrote.
 */
export async function waitForLogEnd(topic: string, atLeast: number, kafka: Kafka = testKafka()): Promise<void> {
  await waitFor(`${topic} to end at ${atLeast} or later`, async () => (await endOffsets(topic, kafka)) >= atLeast, { timeoutMs: 30_000, intervalMs: 50 });
}

/** Waits until the offsets Postgres stores for the group reach the topic's end. */
export async function waitCaughtUp(pool: pg.Pool, topics: TestTopics, timeoutMs = 60_000, kafka: Kafka = testKafka()): Promise<void> {
  const end = await endOffsets(topics.events, kafka);
  await waitFor(
    `group ${topics.groupId} to commit ${end} records to Postgres`,
    async () => {
      const { rows } = await pool.query<{ n: string | null }>(
        'SELECT sum(next_offset)::text AS n FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
        [topics.groupId, topics.events],
      );
      return Number(rows[0]?.n ?? 0) >= end;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

export interface DlqRecord {
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** Reads every record of a topic from the beginning (it must hold exactly `expected`). */
export async function readTopic(topic: string, expected: number, timeoutMs = 30_000, kafka: Kafka = testKafka()): Promise<DlqRecord[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('reader') });
  const records: DlqRecord[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      records.push({ key: message.key?.toString() ?? null, value: message.value, headers: headersOf(message.headers) });
    },
  });
  try {
    await waitFor(`${expected} records on ${topic}`, () => records.length >= expected, { timeoutMs });
  } finally {
    await consumer.disconnect();
  }
  return records;
}

function headersOf(headers: IHeaders | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k, String(v)]));
}

export interface IngestProcess {
  child: ChildProcess;
  apiUrl: string;
  logFile: string;
  /** Resolves when /readyz answers 200. */
  ready(timeoutMs?: number): Promise<void>;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

// Ports for ingest children: a block per test process, so two test runs on one machine (two
// checkouts, say) do not take each other's ports; below the ephemeral range.
let nextPort = 30000 + (process.pid % 100) * 25;

/** Starts `hunt ingest` against the given database and topics. */
export function startIngestProcess(databaseUrl: string, topics: TestTopics, env: Record<string, string> = {}): IngestProcess {
  const port = nextPort++;
  const logDir = path.join(projectRoot, '.hunt', 'test-logs');
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${topics.groupId}-${port}.log`);
  const log = fs.openSync(logFile, 'a');
  const child = spawn('node', [path.join(projectRoot, 'bin/hunt.js'), 'ingest'], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      KAFKA_TOPIC_EVENTS: topics.events,
      KAFKA_TOPIC_DLQ: topics.dlq,
      INGEST_GROUP_ID: topics.groupId,
      API_PORT: String(port),
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const apiUrl = `http://127.0.0.1:${port}`;
  return {
    child,
    apiUrl,
    logFile,
    ready: (timeoutMs = 60_000) =>
      waitFor(`ingest on port ${port} to be ready (log: ${logFile})`, async () => (await fetch(`${apiUrl}/readyz`)).ok, { timeoutMs }).then(
        () => undefined,
      ),
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

/** The live projections in the reference fold's shape, for toEqual against foldEvents. */
export { readProjection as projectionOf };
