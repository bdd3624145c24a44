/**
 * Compressed record batches on the real broker, read by the real `hunt ingest`. kafkajs
 * reads only gzip by itself and crashes the consumer for good on anything else, so one batch
 * from a Java, librdkafka or Go client with compression.type snappy, lz4 or zstd stopped
 * ingest. Every codec is read now (src/pipeline/compression.ts), and a batch that unpacks past
 * the budget is rejected as one `too_large` record under its last offset, while the partition
 * moves on.
 */
import zlib from 'node:zlib';
import { CompressionTypes, Partitioners } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { MAX_UNPACKED_BATCH_BYTES } from '../../src/pipeline/compression';
import { foldEvents } from '../../src/rules/reference';
import { useTestDatabase } from '../helpers/database-fixture';
import { atSecond, joined } from '../helpers/event-builders';
import { createTestTopics, projectionOf, readTopic, startIngestProcess, testKafka, type IngestProcess, type TestTopics } from '../helpers/ingest';
import { sendWithJavaClient, type JavaCodec } from '../helpers/java-producer';
import { waitFor } from '../helpers/wait';

const CODECS: JavaCodec[] = ['gzip', 'snappy', 'lz4', 'zstd'];
const db = useTestDatabase();
let topics: TestTopics;
let ingest: IngestProcess;

beforeAll(async () => {
  topics = await createTestTopics(2);
  ingest = startIngestProcess(db.url, topics);
  await ingest.ready();
}, 120_000);

afterAll(async () => {
  await ingest?.kill('SIGTERM');
});

const eventCount = async (pattern: string) => (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE event_id LIKE $1', [pattern])).rows[0]?.n;

describe('batches a Java client compressed', () => {
  it('are applied whatever the codec: gzip, snappy, lz4 and zstd', async () => {
    const events: HuntEvent[] = CODECS.flatMap((codec) =>
      Array.from({ length: 200 }, (_, i) => joined({ eventId: `${codec}-${i}`, huntId: `hunt-${codec}`, playerId: `p${i % 50}`, occurredAt: atSecond(i), displayName: `Player ${i}` })),
    );
    for (const codec of CODECS) {
      await sendWithJavaClient(topics.events, codec, events.filter((e) => e.huntId === `hunt-${codec}`).map((e) => ({ key: e.huntId, value: JSON.stringify(e) })));
    }
    await waitFor('every compressed event to be applied', async () => (await eventCount('%')) === events.length, { timeoutMs: 60_000 });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM quarantine');
    expect(rows[0]?.n).toBe(0);
  }, 120_000);
});

describe('a batch that unpacks past the budget (a compression bomb)', () => {
  it('is rejected as too_large under its last offset, DLQ and quarantine, and the partition moves on', async () => {
    const bombed = [
      joined({ eventId: 'bomb-before', huntId: 'hunt-bomb', playerId: 'a', occurredAt: atSecond(1) }),
      { eventId: 'bomb', padding: 'x'.repeat(MAX_UNPACKED_BATCH_BYTES + 1024) },
      joined({ eventId: 'bomb-after', huntId: 'hunt-bomb', playerId: 'b', occurredAt: atSecond(2) }),
    ];
    const sentinel = joined({ eventId: 'bomb-sentinel', huntId: 'hunt-bomb', playerId: 'c', occurredAt: atSecond(3) });
    const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    let metadata;
    try {
      // One send to one partition (one key): one gzip batch of three records, about 70 KB on the wire.
      metadata = await producer.send({ topic: topics.events, compression: CompressionTypes.GZIP, messages: bombed.map((value) => ({ key: 'hunt-bomb', value: JSON.stringify(value) })) });
      await producer.send({ topic: topics.events, messages: [{ key: 'hunt-bomb', value: JSON.stringify(sentinel) }] });
    } finally {
      await producer.disconnect();
    }
    const first = BigInt(metadata[0]!.baseOffset!);
    const last = String(first + 2n);

    await waitFor('the sentinel after the bomb to be applied', async () => (await eventCount('bomb-sentinel')) === 1, { timeoutMs: 60_000 });
    expect(await eventCount('bomb-%')).toBe(1);
    const quarantined = await db.pool.query(`SELECT source_offset::text, reason, detail, record_key, record_value FROM quarantine WHERE source_topic = $1`, [topics.events]);
    expect(quarantined.rows).toEqual([
      {
        source_offset: last,
        reason: 'too_large',
        detail: expect.stringMatching(new RegExp(`^the records at offsets ${first}-${last} \\(3 stated\\) are rejected together: its gzip record batch is too large to unpack`)),
        record_key: null,
        record_value: expect.any(Buffer),
      },
    ]);
    // Nothing is lost: the value kept is the batch's compressed records, which gunzip opens.
    const kept = quarantined.rows[0].record_value as Buffer;
    expect(quarantined.rows[0].detail).toMatch(new RegExp(`the value kept is the batch's compressed records \\(gzip, its ${kept.length} bytes\\)$`));
    expect((await unpackedStart(kept, 64 * 1024)).toString('latin1')).toContain('"eventId":"bomb-before"');
    const [copy] = await readTopic(topics.dlq, 1, 30_000);
    expect(copy).toMatchObject({ key: null, headers: { 'error.reason': 'too_large', 'source.offset': last } });
    expect(copy?.value?.equals(kept)).toBe(true);
    expect((await fetch(`${ingest.apiUrl}/readyz`)).status).toBe(200);
  }, 120_000);

  it('that each unpack to a lot are taken a few per fetch, and every one is accounted for', async () => {
    // Each batch is within its own budget (17 MiB unpacked, about 17 KB of gzip); one fetch
    // holds all five, and unpacks only until 32 MiB (patches/kafkajs+2.2.4.patch), so the
    // consumer must fetch again from after the last record it was given, three times.
    const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
    const offsets: string[] = [];
    let partition = -1;
    await producer.connect();
    try {
      for (let i = 0; i < 5; i++) {
        const value = JSON.stringify({ eventId: `heavy-${i}`, padding: 'x'.repeat(17 * 1024 * 1024) });
        const [meta] = await producer.send({ topic: topics.events, compression: CompressionTypes.GZIP, messages: [{ key: 'hunt-heavy', value }] });
        offsets.push(meta!.baseOffset!);
        partition = meta!.partition;
      }
      await producer.send({ topic: topics.events, messages: [{ key: 'hunt-heavy', value: JSON.stringify(joined({ eventId: 'heavy-sentinel', huntId: 'hunt-heavy', playerId: 'a', occurredAt: atSecond(4) })) }] });
    } finally {
      await producer.disconnect();
    }
    await waitFor('the sentinel after the heavy batches to be applied', async () => (await eventCount('heavy-sentinel')) === 1, { timeoutMs: 60_000 });
    const quarantined = await db.pool.query<{ source_offset: string; reason: string }>(
      `SELECT source_offset::text, reason FROM quarantine WHERE source_topic = $1 AND source_partition = $2 AND source_offset >= $3 ORDER BY source_offset`,
      [topics.events, partition, offsets[0]],
    );
    expect(quarantined.rows).toEqual(offsets.map((offset) => ({ source_offset: offset, reason: 'too_large' })));
  }, 120_000);
});

/** The first `bytes` of what a gzip stream unpacks to, without unpacking the rest (a bomb's is 64 MiB). */
function unpackedStart(gzipped: Buffer, bytes: number): Promise<Buffer> {
  const gunzip = zlib.createGunzip();
  const chunks: Buffer[] = [];
  let total = 0;
  return new Promise((resolve, reject) => {
    gunzip.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= bytes) {
        gunzip.destroy();
        resolve(Buffer.concat(chunks).subarray(0, bytes));
      }
    });
    gunzip.on('error', reject);
    gunzip.on('end', () => resolve(Buffer.concat(chunks)));
    gunzip.end(gzipped);
  });
}
