/**
 * No record can stop a partition (CONTRACT.md §1, DESIGN invariant 7), on the real Kafka and
 * Postgres: over 10,000 hostile records of every kind the corpus knows, interleaved with
 * valid events, then a sentinel per partition. Every reject is in the DLQ byte for byte with
 * its reason and in quarantine once; the valid events equal the reference fold; and /readyz
 * never said ready while a partition was stalled.
 */
import { Partitioners, type Message } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { MAX_DETAIL_BYTES } from '../../src/events/detail-text';
import { chunksWithin } from '../../src/ingest/dlq';
import { foldEvents } from '../../src/rules/reference';
import { useTestDatabase } from '../helpers/database-fixture';
import { HOSTILE_KINDS, hostileCorpus, type HostileRecord } from '../helpers/hostile';
import { createTestTopics, projectionOf, readTopic, startIngestProcess, testKafka, type IngestProcess, type TestTopics } from '../helpers/ingest';
import { watchReadiness, type ReadinessSample } from '../helpers/readiness';
import { waitFor } from '../helpers/wait';

const PARTITIONS = 4;
const STALL_LIMIT_MS = 5000;
const corpus = hostileCorpus({ hostile: 10_000, validEvery: 10, hunts: 12, burst: 40, seed: 8 });
const sentinels: HuntEvent[] = Array.from({ length: PARTITIONS }, (_, p) => ({
  eventId: `sentinel-${p}`,
  type: 'player.joined',
  schemaVersion: 1,
  huntId: `sentinel-${p}`,
  playerId: 'last',
  occurredAt: new Date().toISOString(),
  payload: { displayName: 'Sentinel' },
}));

interface Sent extends HostileRecord {
  partition: number;
  offset: string;
}

const db = useTestDatabase();
let topics: TestTopics;
let ingest: IngestProcess;
let sent: Sent[];
let samples: ReadinessSample[];

beforeAll(async () => {
  topics = await createTestTopics(PARTITIONS);
  ingest = startIngestProcess(db.url, topics, { INGEST_STALL_LIMIT_MS: String(STALL_LIMIT_MS) });
  await ingest.ready();
  const watch = watchReadiness({ apiUrl: ingest.apiUrl, pool: db.pool, groupId: topics.groupId, topic: topics.events, stallLimitMs: STALL_LIMIT_MS });
  sent = await sendWithPositions(topics.events, [
    ...corpus.records,
    ...sentinels.map((event, p): HostileRecord & { partition: number } => ({ kind: 'sentinel', key: Buffer.from(event.huntId), value: Buffer.from(JSON.stringify(event)), expect: 'accepted', event, partition: p })),
  ]);
  await waitFor(
    'every sentinel to be applied',
    async () => (await db.pool.query('SELECT count(*)::int AS n FROM events WHERE event_id LIKE $1', ['sentinel-%'])).rows[0].n === PARTITIONS,
    { timeoutMs: 180_000, intervalMs: 250 },
  );
  samples = await watch.stop();
}, 300_000);

afterAll(async () => {
  await ingest?.kill('SIGTERM');
});

describe('a hostile corpus', () => {
  it('has at least 10,000 hostile records of at least 40 kinds', () => {
    expect(corpus.records.filter((r) => r.kind !== 'ordinary').length).toBeGreaterThanOrEqual(10_000);
    expect(HOSTILE_KINDS).toBeGreaterThanOrEqual(40);
    expect(new Set(corpus.records.map((r) => r.kind)).size).toBeGreaterThanOrEqual(40);
  });

  it('is applied where valid: the projections equal the reference fold, sentinels included', async () => {
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...corpus.events, ...sentinels]));
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM events');
    expect(rows[0].n).toBe(new Set([...corpus.events, ...sentinels].map((e) => e.eventId)).size);
  });

  it('copies every reject to the DLQ byte for byte, with its reason and source position', async () => {
    const rejects = sent.filter((r) => r.expect !== 'accepted');
    const dlq = await readTopic(topics.dlq, rejects.length, 120_000);
    expect(dlq).toHaveLength(rejects.length);
    const byPosition = new Map(dlq.map((r) => [`${r.headers['source.partition']}:${r.headers['source.offset']}`, r]));
    const wrong = rejects.flatMap((record) => {
      const copy = byPosition.get(`${record.partition}:${record.offset}`);
      const problems = [
        !copy && 'missing',
        copy && copy.headers['error.reason'] !== record.expect && `reason ${copy.headers['error.reason']}`,
        copy && !sameBytes(copy.value, record.value) && 'value differs',
        copy && (copy.key ?? null) !== (record.key?.toString() ?? null) && 'key differs',
        copy && Buffer.byteLength(copy.headers['error.detail'] ?? '') > MAX_DETAIL_BYTES && 'detail over 1 KiB',
      ].filter(Boolean);
      return problems.length > 0 ? [`${record.kind} at ${record.partition}:${record.offset}: ${problems.join(', ')}`] : [];
    });
    expect(wrong).toEqual([]);
  });

  it('quarantines every reject exactly once, bytes and reason intact', async () => {
    const rejects = sent.filter((r) => r.expect !== 'accepted');
    const { rows } = await db.pool.query<{ source_partition: number; source_offset: number; reason: string; record_value: Buffer | null; detail: string }>(
      'SELECT source_partition, source_offset, reason, record_value, detail FROM quarantine',
    );
    expect(rows).toHaveLength(rejects.length);
    const byPosition = new Map(rows.map((r) => [`${r.source_partition}:${r.source_offset}`, r]));
    const wrong = rejects.flatMap((record) => {
      const row = byPosition.get(`${record.partition}:${record.offset}`);
      const problems = [
        !row && 'missing',
        row && row.reason !== record.expect && `reason ${row.reason}`,
        row && !sameBytes(row.record_value, record.value) && 'value differs',
        row && Buffer.byteLength(row.detail) > MAX_DETAIL_BYTES && 'detail over 1 KiB',
      ].filter(Boolean);
      return problems.length > 0 ? [`${record.kind} at ${record.partition}:${record.offset}: ${problems.join(', ')}`] : [];
    });
    expect(wrong).toEqual([]);
  });

  it('never reported ready while a partition was stalled', () => {
    expect(samples.length).toBeGreaterThan(2);
    const readyWhileStalled = samples.filter((s) => s.stalled.length > 0 && s.status === 200);
    expect(readyWhileStalled).toEqual([]);
  });
});

/**
 * Sends records in order, each to an explicit partition (its hunt's, or round robin for a
 * null key), in sends that fit the broker's limit, and returns where each one landed.
 */
async function sendWithPositions(topic: string, records: (HostileRecord & { partition?: number })[]): Promise<Sent[]> {
  const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const out: Sent[] = [];
  try {
    const messages = records.map((r, i): Message & { record: HostileRecord } => ({
      key: r.key,
      value: r.value,
      partition: r.partition ?? (r.key ? hashPartition(r.key) : i % PARTITIONS),
      record: r,
    }));
    for (const chunk of chunksWithin(messages, 900_000)) {
      const results = await producer.send({ topic, acks: -1, messages: chunk.map(({ key, value, partition }) => ({ key, value, partition })) });
      const next = new Map(results.map((r) => [r.partition, BigInt(r.baseOffset ?? '0')]));
      for (const message of chunk as (Message & { record: HostileRecord })[]) {
        const partition = message.partition as number;
        const offset = next.get(partition) as bigint;
        next.set(partition, offset + 1n);
        out.push({ ...message.record, partition, offset: offset.toString() });
      }
    }
  } finally {
    await producer.disconnect();
  }
  return out;
}

function sameBytes(a: Buffer | null | undefined, b: Buffer | null): boolean {
  return a === null || a === undefined ? b === null : b !== null && a.equals(b);
}

function hashPartition(key: Buffer): number {
  let hash = 0;
  for (const byte of key) hash = (hash * 31 + byte) >>> 0;
  return hash % PARTITIONS;
}
