/**
 * The DLQ topic's max.message.bytes lowered after `hunt ingest` started: the sender still
 * cuts its sends to the limit it read at start-up, and the broker refuses them as too large,
 * which no retry cures. On the real broker, the copies must still all arrive, in order, with
 * their bytes where the topic can hold them, and a partition's lane must not retry for ever.
 */
import { Partitioners, type Producer, type ProducerRecord } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { createDlqProducer, createDlqSender } from '../../src/ingest/dlq';
import { createLogger } from '../../src/log';
import type { RejectedRecord } from '../../src/store/hot-path/quarantine';
import { BROKER_MAX_MESSAGE_BYTES, readTopic, testKafka } from '../helpers/ingest';
import { uniqueName } from '../helpers/wait';

const LOWERED_LIMIT = 150_000;
const kafka = testKafka();
const producer = createDlqProducer(kafka);
const admin = kafka.admin();
// Deleted at the end: the producer, like the hot path's, lets no topic be created for it,
// and it asks for the metadata of every topic it has sent to.
const created: string[] = [];
afterAll(async () => {
  await producer.disconnect();
  if (created.length > 0) await admin.deleteTopics({ topics: created });
  await admin.disconnect();
});

const reject = (offset: number, bytes: number): RejectedRecord => ({
  topic: 'hunt.events', partition: 0, offset: String(offset), key: Buffer.from('hunt-1'),
  value: Buffer.alloc(bytes, 0x61 + (offset % 26)), reason: 'invalid_json', detail: 'not JSON',
});

describe('the DLQ sender, when the topic limit was lowered after start-up', () => {
  it('halves refused sends until they fit, and sends a copy that fits nowhere without its value', async () => {
    await Promise.all([producer.connect(), admin.connect()]);
    const topic = uniqueName('dlq-lowered');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: String(LOWERED_LIMIT) }] }], waitForLeaders: true });
    // The limit it read at start-up: one chunk of five 60 kB copies and one of 200 kB.
    const sender = createDlqSender(producer, topic, BROKER_MAX_MESSAGE_BYTES, createLogger({ logLevel: 'fatal' }));
    const rejects = [reject(1, 60_000), reject(2, 60_000), reject(3, 60_000), reject(4, 200_000), reject(5, 60_000), reject(6, 60_000)];

    await sender.send(rejects);

    const copies = await readTopic(topic, rejects.length, 30_000, kafka);
    expect(copies.map((c) => c.headers['source.offset'])).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(copies.map((c) => c.value?.length ?? null)).toEqual([60_000, 60_000, 60_000, null, 60_000, 60_000]);
    expect(copies[0]?.value?.equals(rejects[0]!.value!)).toBe(true);
    expect(copies[3]?.headers['error.dlq']).toMatch(/value omitted: larger than the DLQ topic max.message.bytes/);
    created.push(topic);
  });

  it('sends a copy whose key alone is too large without key and value (a 1 MB key, hashed by the partitioner)', async () => {
    const topic = uniqueName('dlq-lowered-key');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2, configEntries: [{ name: 'max.message.bytes', value: String(LOWERED_LIMIT) }] }], waitForLeaders: true });
    const sender = createDlqSender(producer, topic, BROKER_MAX_MESSAGE_BYTES, createLogger({ logLevel: 'fatal' }));
    await sender.send([{ ...reject(7, 300_000), key: Buffer.alloc(1_000_000, 0x6b) }, reject(8, 1000)]);
    const copies = await readTopic(topic, 2, 30_000, kafka);
    const byOffset = new Map(copies.map((c) => [c.headers['source.offset'], c]));
    expect(byOffset.get('7')).toMatchObject({ key: null, value: null, headers: { 'error.dlq': expect.stringMatching(/key and value omitted/) } });
    expect(byOffset.get('8')?.value?.length).toBe(1000);
    created.push(topic);
  });
});

describe('the DLQ sender, when the lowered limit refuses one partition of a send and the broker takes the others', () => {
  it('still delivers every copy, and later sends to the partition the broker took go through', async () => {
    const topic = uniqueName('dlq-partial');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2, configEntries: [{ name: 'max.message.bytes', value: String(LOWERED_LIMIT) }] }], waitForLeaders: true });
    const sender = createDlqSender(producer, topic, BROKER_MAX_MESSAGE_BYTES, createLogger({ logLevel: 'fatal' }));
    const [small, large] = [keyInPartition(0, 2), keyInPartition(1, 2)];
    // One send: partition 0's batch (two small copies) is taken, partition 1's (two of 100 kB) refused.
    const rejects = [
      { ...reject(11, 1000), key: small },
      { ...reject(12, 100_000), key: large },
      { ...reject(13, 1000), key: small },
      { ...reject(14, 100_000), key: large },
    ];
    await sender.send(rejects);
    await sender.send([{ ...reject(15, 1000), key: small }]);

    const held = (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
    const copies = await readTopic(topic, held, 30_000, kafka);
    // The DLQ is at-least-once: a copy the broker took before the refusal may come twice.
    const firstSeen = (key: Buffer) => [...new Set(copies.filter((c) => c.key === key.toString()).map((c) => c.headers['source.offset']))];
    expect(firstSeen(small)).toEqual(['11', '13', '15']);
    expect(firstSeen(large)).toEqual(['12', '14']);
    created.push(topic);
  });
});

/** A key the default partitioner puts in `partition` of a topic with `partitions` partitions. */
function keyInPartition(partition: number, partitions: number): Buffer {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));
  for (let i = 0; ; i++) {
    const key = Buffer.from(`hunt-${i}`);
    if (partitioner({ topic: 'any', partitionMetadata, message: { key, value: null } }) === partition) return key;
  }
}

describe('the DLQ sender, for a copy larger than the topic holds (a compressed record unpacks far past any limit)', () => {
  it('sends it without its value, checked before sending (past 100 MB the broker closes the connection instead of refusing)', async () => {
    const topic = uniqueName('dlq-unpacked');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: String(BROKER_MAX_MESSAGE_BYTES) }] }], waitForLeaders: true });
    // The real producer, counting sends: a copy cut down before sending goes with the next
    // record in one send; a copy the broker had to refuse first would take three.
    let sends = 0;
    const counting = { send: (record: ProducerRecord) => ((sends += 1), producer.send(record)) } as Producer;
    const sender = createDlqSender(counting, topic, BROKER_MAX_MESSAGE_BYTES, createLogger({ logLevel: 'fatal' }));
    await sender.send([reject(9, 5_000_000), reject(10, 1000)]);
    expect(sends).toBe(1);
    const copies = await readTopic(topic, 2, 30_000, kafka);
    expect(copies.map((c) => [c.headers['source.offset'], c.value?.length ?? null, c.headers['error.dlq'] ?? null])).toEqual([
      ['9', null, expect.stringMatching(/value omitted/)],
      ['10', 1000, null],
    ]);
    created.push(topic);
  });
});
