/**
 * Smoke test of the foundation against the real services: a Kafka round trip on a fresh
 * topic, a workflow on the real Temporal server through a real worker, and Postgres reads
 * and writes through the migrated schema.
 */
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { Kafka, logLevel } from 'kafkajs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../src/worker/activities';
import { loadConfig, projectRoot } from '../../src/config';
import { createLogger } from '../../src/log';
import { listMigrations } from '../../src/store/migrate';
import { useTestDatabase } from '../helpers/database-fixture';
import { quietTemporalRuntime } from '../helpers/temporal';
import { uniqueName } from '../helpers/wait';

const config = loadConfig();
const db = useTestDatabase();

beforeAll(async () => {
  quietTemporalRuntime();
});

describe('Kafka', () => {
  it('creates a topic and round-trips a keyed message', async () => {
    const kafka = new Kafka({ clientId: 'smoke', brokers: config.kafka.brokers, logLevel: logLevel.NOTHING });
    const topic = uniqueName('smoke');
    const admin = kafka.admin();
    await admin.connect();
    try {
      expect(await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true })).toBe(true);
      expect(await admin.listTopics()).toContain(topic);
    } finally {
      await admin.disconnect();
    }

    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'hunt-1', value: JSON.stringify({ hello: 'kafka' }) }] });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: uniqueName('smoke-group') });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = await new Promise<{ key: string; value: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no message within 30 s')), 30_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          clearTimeout(timer);
          resolve({ key: message.key?.toString() ?? '', value: message.value?.toString() ?? '' });
        },
      });
    });
    await consumer.disconnect();
    expect(received).toEqual({ key: 'hunt-1', value: '{"hello":"kafka"}' });
  });
});

describe('Temporal', () => {
  it('runs a workflow on the real server through a real worker and its activities', async () => {
    const taskQueue = uniqueName('smoke-queue');
    const connection = await Connection.connect({ address: config.temporal.address });
    const workerConnection = await NativeConnection.connect({ address: config.temporal.address });
    try {
      const worker = await Worker.create({
        connection: workerConnection,
        namespace: config.temporal.namespace,
        taskQueue,
        workflowsPath: path.join(projectRoot, 'workflows/index.ts'),
        activities: createActivities({ pool: db.pool, kafka: new Kafka({ brokers: config.kafka.brokers, logLevel: logLevel.NOTHING }), config, logger: createLogger({ logLevel: 'warn' }) }),
      });
      const client = new Client({ connection, namespace: config.temporal.namespace });
      const result = await worker.runUntil(
        client.workflow.execute('healthCheck', { taskQueue, workflowId: uniqueName('smoke-health'), args: [{}] }),
      );
      expect(result).toMatchObject({ migrations: listMigrations().length, checkedBy: 'hunt-batch worker' });
      expect(result.postgres).toMatch(/^\d+/);
    } finally {
      await workerConnection.close();
      await connection.close();
    }
  });
});

describe('Postgres', () => {
  it('writes and reads through the migrated schema, deduplicating by eventId', async () => {
    const insert = `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source)
                    VALUES ($1, 'h1', 'p1', 'clue.found', '2026-11-22T10:00:00Z', '{"clueId":"c1","points":5}', 'smoke')
                    ON CONFLICT (event_id) DO NOTHING`;
    expect((await db.pool.query(insert, ['e1'])).rowCount).toBe(1);
    expect((await db.pool.query(insert, ['e1'])).rowCount).toBe(0);

    await db.pool.query(`INSERT INTO player_scores (hunt_id, player_id, score, clues_found) VALUES ('h1', 'p1', 5, 1)`);
    const { rows } = await db.pool.query(
      `SELECT e.seq, e.payload->>'points' AS points, s.score, s.active
         FROM events e JOIN player_scores s USING (hunt_id, player_id) WHERE e.event_id = 'e1'`,
    );
    expect(rows).toEqual([{ seq: expect.any(Number), points: '5', score: 5, active: true }]);
  });
});
