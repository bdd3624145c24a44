/**
 * The DLQ relay (src/ingest/dlq-relay.ts) on the real Postgres and Kafka, with a producer
 * that refuses every other send: each acknowledged send's rows are marked sent as it goes,
 * so the copies all arrive, each once, instead of the whole claim being sent again after
 * every failure and never marked (a review measured 100 copies of 40 rejects in 4 s, all
 * still waiting). And a stopping relay sends what waits, then stops.
 */
import type { Producer, ProducerRecord } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { createDlqProducer, createDlqSender } from '../../src/ingest/dlq';
import { startDlqRelay } from '../../src/ingest/dlq-relay';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { createLogger } from '../../src/log';
import { pendingCopies } from '../../src/store/hot-path/dlq-outbox';
import { quarantineRecords, type RejectedRecord } from '../../src/store/hot-path/quarantine';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { BROKER_MAX_MESSAGE_BYTES, endOffsets, readTopic, testKafka } from '../helpers/ingest';
import { uniqueName, waitFor } from '../helpers/wait';

const db = useTestDatabase();
const kafka = testKafka();
const producer = createDlqProducer(kafka);
const admin = kafka.admin();
const INPUT = 'relay.events';
const REJECTS = 40;

afterAll(async () => {
  await producer.disconnect();
  await admin.disconnect();
});

const reject = (offset: number): RejectedRecord => ({
  topic: INPUT,
  partition: 0,
  offset: String(offset),
  key: Buffer.from('hunt-1'),
  // 60 KB each: about 17 copies fit one send under the 1 MiB limit, so 40 take three sends.
  value: Buffer.alloc(60_000, 0x61 + (offset % 26)),
  reason: 'invalid_json',
  detail: `reject ${offset}`,
});

describe('the DLQ relay', () => {
  it('marks each acknowledged send as it goes, so a DLQ refusing every other send gets every copy once', async () => {
    await Promise.all([producer.connect(), admin.connect()]);
    const dlq = uniqueName('relay-dlq');
    await admin.createTopics({ topics: [{ topic: dlq, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: String(BROKER_MAX_MESSAGE_BYTES) }] }], waitForLeaders: true });
    await withTransaction(db.pool, (client) => quarantineRecords(client, Array.from({ length: REJECTS }, (_, i) => reject(i)), { copyToDlq: true }));

    let sends = 0;
    const flaky = {
      send: (record: ProducerRecord) => (++sends % 2 === 0 ? Promise.reject(new Error('NOT_ENOUGH_REPLICAS (test)')) : producer.send(record)),
    } as Producer;
    const metrics = createIngestMetrics();
    const relay = startDlqRelay({
      pool: db.pool,
      sender: createDlqSender(flaky, dlq, BROKER_MAX_MESSAGE_BYTES, createLogger({ logLevel: 'fatal' })),
      topic: INPUT,
      metrics,
      logger: createLogger({ logLevel: 'fatal' }),
    });
    try {
      await waitFor('every copy to be sent', async () => (await pendingCopies(db.pool, INPUT)).count === 0, { timeoutMs: 30_000, intervalMs: 100 });
    } finally {
      await relay.stop(5_000);
    }
    const copies = await readTopic(dlq, REJECTS, 30_000, kafka);
    expect(copies.map((c) => Number(c.headers['source.offset']))).toEqual(Array.from({ length: REJECTS }, (_, i) => i));
    expect((await metrics.registry.getSingleMetricAsString('hunt_ingest_dlq_relay_failures_total')).split('\n').at(-1)).toMatch(/ [1-9]\d*$/);
    // No copy went twice: the topic holds exactly one per reject.
    expect(await endOffsets(dlq, kafka)).toBe(REJECTS);
    await admin.deleteTopics({ topics: [dlq] });
  });
});
