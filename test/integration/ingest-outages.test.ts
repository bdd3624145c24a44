/**
 * Outages of what the hot path depends on, besides its own code, on the real Kafka and
 * Postgres: a DLQ topic deleted under the running consumer, one that refuses every copy,
 * a database whose default statement_timeout is shorter than a micro-batch, a Postgres too slow
 * for a whole micro-batch within the hot path's own limit, and a Kafka that cannot be reached
 * when the process starts. None may hold the stream: rejects are
 * quarantined with their micro-batch and their DLQ copies wait (counted) for the relay, the
 * hot path sets its own statement limit, and start-up waits for Kafka instead of exiting.
 */
import fs from 'node:fs';
import { loadConfig } from '../../src/config';
import { runIngestService } from '../../src/ingest/service';
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { foldEvents } from '../../src/rules/reference';
import { DLQ_HEADROOM_BYTES } from '../../src/ingest/topics';
import { pendingCopies as copiesWaiting } from '../../src/store/hot-path/dlq-outbox';
import type { TestDatabase } from '../helpers/database';
import { BROKER_MAX_MESSAGE_BYTES, createTestTopics, projectionOf, readTopic, sendRecords, startIngestProcess, testKafka, waitCaughtUp } from '../helpers/ingest';
import { asRecords, eventCount, eventsFor, expectNoLogReset, metricsOf, readyz, useIngestFaultKit } from '../helpers/ingest-faults';
import { runHunt } from '../helpers/hunt-command';
import { forwardPort, freePort } from '../helpers/tcp-forward';
import { waitFor } from '../helpers/wait';
import { slowNextEventInsert } from '../helpers/slow-statement';

const { database, runIngest, track, waitStored, onCleanup } = useIngestFaultKit();

const pendingCopies = async (db: TestDatabase) => (await copiesWaiting(db.pool, null)).count;

describe('a DLQ topic deleted under the running consumer', () => {
  it('does not hold the stream; the relay creates it again as it was (size, partitions, retention) and sends the copy', async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    const admin = testKafka().admin();
    await admin.connect();
    // The operator's own setting of the DLQ, and its one partition (not the default four).
    const sevenWeeks = String(7 * 7 * 24 * 3600 * 1000);
    const [before] = (await admin.describeConfigs({ resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topics.dlq }], includeSynonyms: false })).resources;
    const ownSettings = (before?.configEntries ?? []).filter((e) => e.configSource === kafkajs.ConfigSource.TOPIC_CONFIG).map((e) => ({ name: e.configName, value: e.configValue }));
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topics.dlq, configEntries: [...ownSettings, { name: 'retention.ms', value: sevenWeeks }] }],
    });
    const ingest = await runIngest(db, topics);
    const events = eventsFor('dq', 3);
    try {
      await admin.deleteTopics({ topics: [topics.dlq] });
      await sendRecords(topics.events, [...asRecords(events.slice(0, 2)), { key: 'hunt-0', value: '{"eventId": "half' }, ...asRecords(events.slice(2))]);
      await waitStored(db, topics, 4n, 'the micro-batch with the reject to commit');
      await waitFor('the copy to be sent', async () => (await pendingCopies(db)) === 0, { timeoutMs: 60_000, intervalMs: 200 });
      expect(fs.readFileSync(ingest.logFile, 'utf8')).toMatch(/the DLQ topic is gone \(deleted\?\); creating it again as at start-up/);
      const [dlqConfig] = (await admin.describeConfigs({ resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topics.dlq }], includeSynonyms: false })).resources;
      const maxMessageBytes = Number(dlqConfig?.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue);
      expect(maxMessageBytes).toBeGreaterThanOrEqual(BROKER_MAX_MESSAGE_BYTES + DLQ_HEADROOM_BYTES);
      expect(dlqConfig?.configEntries.find((e) => e.configName === 'retention.ms')?.configValue).toBe(sevenWeeks);
      const { topics: [dlqMetadata] } = await admin.fetchTopicMetadata({ topics: [topics.dlq] });
      expect(dlqMetadata?.partitions).toHaveLength(1);
    } finally {
      await admin.disconnect();
    }
    const copies = await readTopic(topics.dlq, 1);
    expect(copies.map((c) => [c.headers['error.reason'], c.value?.toString()])).toEqual([['invalid_json', '{"eventId": "half']]);
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    const { rows } = await db.pool.query<{ reason: string }>('SELECT reason FROM quarantine');
    expect(rows.map((r) => r.reason)).toEqual(['invalid_json']);
    // The DLQ producer's "does not host this topic-partition" is about the DLQ topic, not the input.
    expect(fs.readFileSync(ingest.logFile, 'utf8')).not.toMatch(/partitions were unknown to the broker/);
    await expectNoLogReset(ingest);
  });
});

describe('a DLQ topic that refuses every copy', () => {
  it('does not hold the stream: rejects are quarantined and counted as waiting, and their copies go once it takes them', async () => {
    const db = await database();
    const topics = await createTestTopics(2);
    const admin = testKafka().admin();
    await admin.connect();
    // A limit below any record batch, set under the running consumer (start-up would raise
    // it): every copy is refused (MESSAGE_TOO_LARGE, even without its bytes) for as long as
    // it stays, as a DLQ without WRITE permission or with its replicas down would.
    const dlqLimit = (maxMessageBytes: number) => ({
      validateOnly: false,
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topics.dlq, configEntries: [{ name: 'max.message.bytes', value: String(maxMessageBytes) }] }],
    });
    try {
      const ingest = await runIngest(db, topics);
      await admin.alterConfigs(dlqLimit(50));
      const probe = testKafka().producer();
      await probe.connect();
      await waitFor('the broker to apply the limit', () => probe.send({ topic: topics.dlq, acks: -1, messages: [{ value: 'probe' }] }).then(() => false, () => true), { timeoutMs: 30_000, intervalMs: 200 });
      await probe.disconnect();
      const events = eventsFor('nr', 200);
      const rejects = ['{"eventId": "one', '{"eventId": "two', 'three'].map((value, i) => ({ key: `hunt-${i}`, value }));
      await sendRecords(topics.events, [...asRecords(events.slice(0, 100)), ...rejects, ...asRecords(events.slice(100))]);
      // Everything commits, the rejects' micro-batches too: before, they waited for the DLQ for ever.
      await waitCaughtUp(db.pool, topics);
      expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
      expect(await pendingCopies(db)).toBe(3);
      await waitFor('the relay to report its failure and the waiting copies', async () => {
        const metrics = await metricsOf(ingest);
        return /^hunt_ingest_dlq_copies_pending 3$/m.test(metrics) && /^hunt_ingest_dlq_relay_failures_total [1-9]/m.test(metrics);
      }, { timeoutMs: 90_000, intervalMs: 500 });
      expect((await readyz(ingest)).status).toBe(200);
      const listed = await runHunt(['dlq', 'list'], { DATABASE_URL: db.url });
      expect(listed.stdout).toMatch(/^DLQ copies not sent yet: 3 \(oldest \d+ s/m);
      expect(listed.stdout.match(/\[DLQ copy not sent yet\]/g)).toHaveLength(3);
      const refusal = fs.readFileSync(ingest.logFile, 'utf8').split('\n').find((line) => line.includes('could not copy rejects to the DLQ; they stay quarantined'));
      expect(refusal).toMatch(/MESSAGE_TOO_LARGE/);

      await admin.alterConfigs(dlqLimit(BROKER_MAX_MESSAGE_BYTES + DLQ_HEADROOM_BYTES));
      await waitFor('the copies to be sent', async () => (await pendingCopies(db)) === 0, { timeoutMs: 90_000, intervalMs: 500 });
      const copies = (await readTopic(topics.dlq, 3)).filter((c) => c.value?.toString() !== 'probe');
      expect(copies.map((c) => c.value?.toString()).sort()).toEqual(rejects.map((r) => r.value).sort());
      expect(copies.every((c) => c.headers['error.reason'] === 'invalid_json')).toBe(true);
      await waitFor('the gauge to clear', async () => /^hunt_ingest_dlq_copies_pending 0$/m.test(await metricsOf(ingest)), { timeoutMs: 10_000, intervalMs: 200 });
    } finally {
      await admin.disconnect();
    }
  });
});

describe("a database whose default statement_timeout is shorter than a full micro-batch", () => {
  it('does not hold the backlog: the hot path sets its own limit on its sessions', { timeout: 180_000 }, async () => {
    const db = await database();
    const topics = await createTestTopics(2);
    // A managed Postgres's role or database default, far below what 5,000 events take.
    await db.pool.query(`ALTER DATABASE "${db.name}" SET statement_timeout = '40ms'`);
    const events = eventsFor('st', 40_000);
    await sendRecords(topics.events, asRecords(events));
    const ingest = await runIngest(db, topics);
    await waitCaughtUp(db.pool, topics, 120_000);
    expect(await eventCount(db)).toBe(events.length);
    // Before, every full micro-batch failed with 57014 (canceled by statement timeout) and was retried as it was.
    expect(await metricsOf(ingest)).toMatch(/^hunt_ingest_commit_retries_total 0$/m);
  });
});

describe('a micro-batch that runs out of time on every attempt', () => {
  it('does not hold the stream: the rest of it is committed in smaller parts, each event once', { timeout: 180_000 }, async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    // Postgres so slow that any statement storing more than 300 events runs out of time, as a
    // statement_timeout would cancel it (same SQLSTATE), at once rather than after 110 s.
    await db.pool.query(`
      CREATE FUNCTION too_slow_for_big_batches() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF (SELECT count(*) FROM stored) > 300 THEN
          RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = 'query_canceled';
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER too_slow_for_big_batches AFTER INSERT ON events REFERENCING NEW TABLE AS stored
        FOR EACH STATEMENT EXECUTE FUNCTION too_slow_for_big_batches();`);
    const events = eventsFor('slow', 4000);
    // Rejects among them, one every 80 events: they go with the part they fall in.
    const records = asRecords(events).flatMap((r, i) => (i % 80 === 0 ? [{ key: r.key, value: `{"eventId": "broken-${i}"` }, r] : [r]));
    await sendRecords(topics.events, records);
    const ingest = await runIngest(db, topics);
    // Before, the first micro-batch over 300 events was retried as it was, for ever.
    await waitCaughtUp(db.pool, topics, 120_000);
    expect(await eventCount(db)).toBe(events.length);
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    const quarantined = await db.pool.query<{ rows: number; offsets: number }>(`SELECT count(*)::int AS rows, count(DISTINCT source_offset)::int AS offsets FROM quarantine WHERE reason = 'invalid_json'`);
    expect(quarantined.rows[0]).toEqual({ rows: events.length / 80, offsets: events.length / 80 });
    const metrics = await metricsOf(ingest);
    const splits = Number(/^hunt_ingest_commit_splits_total (\d+)$/m.exec(metrics)?.[1]);
    expect(splits).toBeGreaterThan(0);
    expect(fs.readFileSync(ingest.logFile, 'utf8')).toMatch(/micro-batch commit ran out of time; committing the rest in smaller parts/);
  });
});

describe('a micro-batch whose sorts spill past the server\'s temp_file_limit', () => {
  it('does not hold the stream: the rest of it is committed in smaller parts, each event once', { timeout: 180_000 }, async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    // The smallest work_mem makes a full micro-batch's sorts spill to temporary files, and a
    // temp_file_limit (a superuser's setting, as a managed service may set it) refuses them:
    // SQLSTATE 53400 on every retry of the same batch, where a part of it sorts in memory.
    await db.pool.query(`ALTER DATABASE "${db.name}" SET work_mem = '64kB'`);
    await db.pool.query(`ALTER DATABASE "${db.name}" SET temp_file_limit = '64kB'`);
    const events = eventsFor('spill', 4000);
    await sendRecords(topics.events, asRecords(events));
    const ingest = await runIngest(db, topics);
    // Before, the micro-batch was retried as it was, for ever.
    await waitCaughtUp(db.pool, topics, 120_000);
    expect(await eventCount(db)).toBe(events.length);
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    const metrics = await metricsOf(ingest);
    expect(Number(/^hunt_ingest_commit_splits_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(fs.readFileSync(ingest.logFile, 'utf8')).toMatch(/temp_file_limit/);
  });
});

describe('a micro-batch commit that takes longer than the group session timeout', () => {
  it('keeps the member in its group: the records waiting for room heartbeat meanwhile', { timeout: 180_000 }, async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    // Once, a statement storing events takes 10 s: longer than the member's 6 s session.
    const slow = await slowNextEventInsert(db.pool, 10);
    const events = eventsFor('held', 4000);
    await sendRecords(topics.events, asRecords(events));
    const ingest = await runIngest(db, topics, { INGEST_SESSION_TIMEOUT_MS: '6000' });
    await waitCaughtUp(db.pool, topics, 120_000);
    expect(await eventCount(db)).toBe(events.length);
    expect(await slow.fired()).toBe(true);
    // Dropped from the group, the member joined again once the commit was done (and any other member with it).
    const joins = fs.readFileSync(ingest.logFile, 'utf8').split('\n').filter((line) => line.includes('"msg":"joined group"'));
    expect(joins).toHaveLength(1);
  });
});

describe('a start-up that waits for Kafka', () => {
  it('ends when its start-up signal aborts, with the signal\'s reason (hunt start: the embedded Kafka died)', { timeout: 60_000 }, async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    const port = await freePort();
    const config = loadConfig({ DATABASE_URL: db.url, KAFKA_BROKERS: `127.0.0.1:${port}`, KAFKA_TOPIC_EVENTS: topics.events, KAFKA_TOPIC_DLQ: topics.dlq, INGEST_GROUP_ID: topics.groupId, API_PORT: String(await freePort()), LOG_LEVEL: 'silent' });
    const died = new AbortController();
    const starting = runIngestService(config, undefined, died.signal);
    setTimeout(() => died.abort(new Error('the embedded kafka (pid 1) is no longer running')), 2000);
    // Before, the wait went on for ever, saying only "check KAFKA_BROKERS".
    await expect(starting).rejects.toThrow(/the embedded kafka \(pid 1\) is no longer running/);
  });
});

describe('a Kafka that cannot be reached when hunt ingest starts', () => {
  it('is waited for, not ridden out by exiting: not ready meanwhile, and consuming as soon as it answers', { timeout: 180_000 }, async () => {
    const db = await database();
    const topics = await createTestTopics(2);
    const events = eventsFor('kdown', 500);
    await sendRecords(topics.events, asRecords(events));
    const port = await freePort();
    const ingest = track(startIngestProcess(db.url, topics, { KAFKA_BROKERS: `127.0.0.1:${port}` }));
    const log = () => fs.readFileSync(ingest.logFile, 'utf8');
    // kafkajs gives up on a connect after about 13 s; before, the process then exited with the error.
    const waits = () => log().split('\n').filter((line) => line.includes('Kafka cannot be reached; waiting for it')).length;
    await waitFor('two waits for Kafka in the log', () => waits() >= 2 || ingest.child.exitCode !== null, { timeoutMs: 60_000, intervalMs: 250 });
    expect(ingest.child.exitCode, `hunt ingest exited while Kafka was unreachable:\n${log().slice(-2000)}`).toBeNull();
    const notReady = await readyz(ingest);
    expect(notReady.status).toBe(503);
    expect(notReady.body.error).toMatch(/kafka: unreachable/);

    const forwarder = await forwardPort(port, loadConfig({}).kafka.brokers[0]!);
    onCleanup(() => forwarder.close());
    await ingest.ready(90_000);
    await waitCaughtUp(db.pool, topics, 60_000);
    expect(await eventCount(db)).toBe(events.length);
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
  });
});
