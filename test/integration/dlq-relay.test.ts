/**
 * The DLQ relay (src/ingest/dlq-relay.ts) on the real Postgres and Kafka, with a producer
 * that refuses every other send: each acknowledged send's rows are marked sent as it goes,
 * so the copies all arrive, each once, instead of the whole claim being sent again after
 * every failure and never marked (a review measured 100 copies of 40 rejects in 4 s, all
 * still waiting). And a copy the topic refuses for the record itself is set aside, so the
 * copies behind it go out: before, none of them ever did.
 */
import { ConfigResourceTypes, type Producer, type ProducerRecord } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { createDlqProducer, createDlqSender, type DlqSender } from '../../src/ingest/dlq';
import { startDlqRelay } from '../../src/ingest/dlq-relay';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { createLogger } from '../../src/log';
import { pendingCopies } from '../../src/store/hot-path/dlq-outbox';
import { quarantineRecords, type RejectedRecord } from '../../src/store/hot-path/quarantine';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { runHunt } from '../helpers/hunt-command';
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

/** A relay copying `input`'s rejects to `dlq` through `producer`, with metrics of its own. */
function relayTo(producer: Producer, dlq: string, input: string) {
  const metrics = createIngestMetrics();
  const quiet = createLogger({ logLevel: 'fatal' });
  const relay = startDlqRelay({ pool: db.pool, sender: createDlqSender(producer, dlq, BROKER_MAX_MESSAGE_BYTES, quiet), topic: input, metrics, logger: quiet });
  return { relay, metrics };
}

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
    const { relay, metrics } = relayTo(flaky, dlq, INPUT);
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

  it('sets aside a copy the DLQ topic refuses for the record itself, and the copies behind it go out', async () => {
    // A producer of its own: kafkajs keeps asking for the metadata of the topic the test before deleted.
    const ownProducer = createDlqProducer(kafka);
    await Promise.all([ownProducer.connect(), admin.connect()]);
    // A compacted DLQ refuses a record without a key (INVALID_RECORD) however often it is sent.
    // Three partitions: the broker takes the other partitions' batches of the refused send.
    const dlq = uniqueName('relay-dlq-compacted');
    await admin.createTopics({ topics: [{ topic: dlq, numPartitions: 3, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }], waitForLeaders: true });
    const input = uniqueName('relay-refused-input');
    const rejects = Array.from({ length: 6 }, (_, i) => ({ ...reject(i), topic: input, value: Buffer.from(`not json ${i}`), key: i === 1 ? null : Buffer.from(`hunt-${i}`) }));
    await withTransaction(db.pool, (client) => quarantineRecords(client, rejects, { copyToDlq: true }));

    const { relay, metrics } = relayTo(ownProducer, dlq, input);
    try {
      await waitFor('the copies behind the refused one to go', async () => (await pendingCopies(db.pool, input)).count === 1, { timeoutMs: 30_000, intervalMs: 100 });
      // Each went, and at most twice (once in the refused send, once alone), not once per halving.
      const written = await endOffsets(dlq, kafka);
      const copies = await readTopic(dlq, written, 30_000, kafka);
      expect([...new Set(copies.map((c) => Number(c.headers['source.offset'])))].sort()).toEqual([0, 2, 3, 4, 5]);
      expect(written).toBeLessThanOrEqual(10);
      await waitFor('the gauges to count the copy set aside', async () => (await metrics.registry.getSingleMetricAsString('hunt_ingest_dlq_copies_refused')).endsWith(' 1'), { timeoutMs: 10_000, intervalMs: 100 });
      // The refused copy still waits, with the broker's reason, under a lease that keeps it out
      // of the passes before it is tried again; quarantine keeps its bytes.
      const { rows } = await db.pool.query<{ source_offset: string; dlq_refused: string | null; set_aside_minutes: number }>(
        `SELECT source_offset::text, dlq_refused, extract(epoch FROM dlq_claimed_until - now())::float8 / 60 AS set_aside_minutes
           FROM quarantine WHERE source_topic = $1 AND dlq_pending`,
        [input],
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ source_offset: '1', dlq_refused: expect.stringMatching(/^INVALID_RECORD: /) });
      expect(rows[0]?.set_aside_minutes).toBeGreaterThan(9);
      expect(await pendingCopies(db.pool, input)).toMatchObject({ count: 1, refused: 1 });
      const listed = await runHunt(['dlq', 'list'], { DATABASE_URL: db.url });
      expect(listed.stdout).toMatch(/^DLQ copies not sent yet: 1 \(oldest \d+ s, 1 refused by the DLQ topic for the record itself;/m);
      expect(listed.stdout).toMatch(/@1 \[DLQ copy refused, tried again in 10 min to 6 h: INVALID_RECORD: [^\]]+\]: reject 1$/m);

      // The topic put right (no longer compacted), and the set-aside time over: the copy goes.
      await admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: dlq, configEntries: [{ name: 'cleanup.policy', value: 'delete' }] }] });
      // The broker applies it a moment later: a copy tried before then is set aside once more,
      // for 10 minutes. A keyless probe goes once it does.
      await waitFor('the broker to take keyless records', () => ownProducer.send({ topic: dlq, acks: -1, messages: [{ value: 'probe' }] }).then(() => true, () => false), { timeoutMs: 30_000, intervalMs: 200 });
      await db.pool.query('UPDATE quarantine SET dlq_claimed_until = now() WHERE source_topic = $1 AND dlq_pending', [input]);
      await waitFor('the refused copy to go once the topic takes it', async () => (await pendingCopies(db.pool, input)).count === 0, { timeoutMs: 30_000, intervalMs: 100 });
      expect(await endOffsets(dlq, kafka)).toBe(written + 2); // the copy and the probe
    } finally {
      await relay.stop(5_000);
      await ownProducer.disconnect();
    }
    await admin.deleteTopics({ topics: [dlq] });
  });
  it('backs off while the DLQ refuses every send, however often new rejects wake it', async () => {
    const input = uniqueName('relay-refused.events');
    await withTransaction(db.pool, (client) => quarantineRecords(client, [{ ...reject(0), topic: input }], { copyToDlq: true }));
    let sends = 0;
    const refusing: DlqSender = {
      send: () => {
        sends++;
        return Promise.reject(new Error('TOPIC_AUTHORIZATION_FAILED (test)'));
      },
    };
    const metrics = createIngestMetrics();
    const relay = startDlqRelay({ pool: db.pool, sender: refusing, topic: input, metrics, logger: createLogger({ logLevel: 'fatal' }) });
    // The hot path wakes it at each commit that quarantined rejects: here every 20 ms for 3 s.
    const waking = setInterval(() => relay.wake(), 20);
    try {
      await new Promise((resolve) => setTimeout(resolve, 3_000));
    } finally {
      clearInterval(waking);
      await relay.stop(1_000);
    }
    // Backoff of 500 ms, 1 s, 2 s after the first three failures: at most four passes in 3 s
    // (and the stop's one try). Cut short by every wake, it was well over a hundred.
    expect(sends).toBeGreaterThanOrEqual(2);
    expect(sends).toBeLessThanOrEqual(6);
    expect((await pendingCopies(db.pool, input)).count).toBe(1);
  });
});
