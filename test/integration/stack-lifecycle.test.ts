/**
 * `hunt stack up|down` on a second, throw-away stack (own ports and state folder, same
 * cached binaries): up twice is a no-op the second time, and down then up keeps the data of
 * every service (Postgres rows, Temporal workflows, Kafka messages).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../infra/process';
import { loadConfig, projectRoot } from '../../src/config';
import { readTopic } from '../helpers/ingest';
import { uniqueName } from '../helpers/wait';

const run = promisify(execFile);
const stateDir = path.join(projectRoot, '.hunt', 'test-stacks', uniqueName('lifecycle'));
// Only the ports and the state folder differ from the main stack; the cache is shared.
const env = {
  ...process.env,
  HUNT_STATE_DIR: stateDir,
  HUNT_PG_PORT: '25432',
  HUNT_KAFKA_PORT: '29092',
  HUNT_KAFKA_CONTROLLER_PORT: '29093',
  HUNT_TEMPORAL_PORT: '27233',
  HUNT_TEMPORAL_UI_PORT: '28233',
  HUNT_KAFKA_HEAP: '384m',
  DATABASE_URL: '',
  KAFKA_BROKERS: '',
  TEMPORAL_ADDRESS: '',
};
const config = loadConfig(env);

function hunt(...args: string[]) {
  return run('node', [path.join(projectRoot, 'bin/hunt.js'), ...args], { env, maxBuffer: 8 * 1024 * 1024 });
}

function pids(): Record<string, number> {
  return Object.fromEntries(
    ['postgres', 'kafka', 'temporal'].map((name) => [
      name,
      // The pid, then when the process started (infra/process.ts).
      Number.parseInt(fs.readFileSync(path.join(stateDir, name, `${name}.pid`), 'utf8'), 10),
    ]),
  );
}

function startCount(name: string): number {
  const log = fs.readFileSync(path.join(stateDir, name, `${name}.log`), 'utf8');
  return log.split('\n').filter((line) => line.includes(' starting: ')).length;
}

beforeAll(async () => {
  await hunt('stack', 'up');
});

afterAll(async () => {
  await hunt('stack', 'down').catch(() => undefined);
  fs.rmSync(stateDir, { recursive: true, force: true });
});

describe('hunt stack', () => {
  it('up a second time is a no-op: same processes, nothing restarted', async () => {
    const before = pids();
    const { stdout } = await hunt('stack', 'up');
    expect(pids()).toEqual(before);
    for (const name of ['postgres', 'kafka', 'temporal']) expect(startCount(name)).toBe(1);
    expect(stdout).toContain(`Web UI: http://127.0.0.1:28233`);
    expect(stdout).toMatch(/postgres\s+up\s+postgres:\/\/hunt@127\.0\.0\.1:25432\/hunt/);
  });

  it('down then up restores Postgres rows, Temporal workflows and Kafka messages', async () => {
    await hunt('migrate');
    const db = new pg.Client({ connectionString: config.databaseUrl });
    await db.connect();
    await db.query(`INSERT INTO hunts (hunt_id, events_applied) VALUES ('survivor', 42)`);
    await db.end();

    const workflowId = uniqueName('survivor');
    let connection = await Connection.connect({ address: config.temporal.address });
    // No worker polls this queue, so the workflow stays open across the restart.
    await new Client({ connection }).workflow.start('healthCheck', { taskQueue: 'nobody-polls', workflowId, args: [{}] });
    await connection.close();

    const topic = uniqueName('survivor');
    const kafka = new Kafka({ clientId: 'lifecycle', brokers: config.kafka.brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'k', value: 'kept' }] });
    await producer.disconnect();

    const before = pids();
    const { stdout: downOut } = await hunt('stack', 'down');
    expect(downOut).not.toMatch(/\bup\b/);
    for (const pid of Object.values(before)) expect(isAlive(pid)).toBe(false);
    await expect(hunt('stack', 'status')).rejects.toMatchObject({ code: 3 });

    await hunt('stack', 'up');
    const after = new pg.Client({ connectionString: config.databaseUrl });
    await after.connect();
    const { rows } = await after.query(`SELECT events_applied FROM hunts WHERE hunt_id = 'survivor'`);
    await after.end();
    expect(rows).toEqual([{ events_applied: '42' }]);

    connection = await Connection.connect({ address: config.temporal.address });
    const handle = new Client({ connection }).workflow.getHandle(workflowId);
    expect((await handle.describe()).status.name).toBe('RUNNING');
    await handle.terminate('test done');
    await connection.close();

    const offsets = await (async () => {
      const admin = kafka.admin();
      await admin.connect();
      try {
        return await admin.fetchTopicOffsets(topic);
      } finally {
        await admin.disconnect();
      }
    })();
    expect(offsets.reduce((sum, p) => sum + Number(p.high), 0)).toBe(1);
    // The message itself, not only its offset.
    const [message] = await readTopic(topic, 1, 30_000, kafka);
    expect({ key: message?.key, value: message?.value?.toString() }).toEqual({ key: 'k', value: 'kept' });
  });
});
