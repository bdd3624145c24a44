/**
 * The README's main command, `hunt start`, end to end: stack, migrations, the hot path with
 * its read API filling from the demo producer, and the batch worker serving the task queue
 * with the Schedules applied. Uses its own database and topics; the task queue and the
 * Schedules are the product's defaults, as an operator would see them.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, projectRoot } from '../../src/config';
import { scheduleSpecs } from '../../src/temporal/schedules';
import { useTestDatabase } from '../helpers/database-fixture';
import { createTestTopics, endOffsets, testKafka } from '../helpers/ingest';
import { uniqueName, waitFor } from '../helpers/wait';
import { temporalClient } from '../helpers/worker';

const db = useTestDatabase();

describe('hunt start', () => {
  it('runs ingest, the read API, the batch worker and the demo producer, then stops cleanly', async () => {
    const topics = await createTestTopics(2);
    const port = 18090;
    const child = spawn('node', [path.join(projectRoot, 'bin/hunt.js'), 'start', '--duration', '25', '--rate', '200'], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        KAFKA_TOPIC_EVENTS: topics.events,
        KAFKA_TOPIC_DLQ: topics.dlq,
        INGEST_GROUP_ID: topics.groupId,
        API_PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const saying = async <T>(wait: () => Promise<T>): Promise<T> => {
      try {
        return await wait();
      } catch (err) {
        throw new Error(`${(err as Error).message}; hunt start printed:\n${output.slice(-3000)}`, { cause: err });
      }
    };
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));

    // Generous: inside the whole suite's load, start-up (stack check, migrations, the worker's
    // workflow bundle) once took about 90 s, where alone it takes a few. A wait that ends says
    // what the command printed, which a test timeout would not.
    await saying(() => waitFor('the running banner', () => output.includes('Treasure Hunt Engine is running.'), { timeoutMs: 150_000 }));
    expect(output).toContain(`Live leaderboard: http://127.0.0.1:${port}/hunts/hunt-0 `);
    expect(output).toContain(`Leaderboard JSON: http://127.0.0.1:${port}/hunts/hunt-0/leaderboard `);
    expect(output).toMatch(/Temporal Web UI: +http:\/\/127\.0\.0\.1:\d+/);
    expect(output).toContain('Batch worker:     task queue hunt-batch');

    const board = await waitFor('demo events on the leaderboard', async () => {
      const res = await fetch(`http://127.0.0.1:${port}/hunts/hunt-0/leaderboard`);
      if (!res.ok) return undefined;
      const body = (await res.json()) as { entries: unknown[] };
      return body.entries.length > 0 ? body : undefined;
    });
    expect(board.entries.length).toBeGreaterThan(0);

    // The worker serves the product's task queue: a job started now completes.
    const config = loadConfig();
    const { client, close } = await temporalClient();
    try {
      const result = await client.workflow.execute('healthCheck', { taskQueue: config.temporal.taskQueue, workflowId: uniqueName('start-health'), args: [{}] });
      expect(result).toMatchObject({ checkedBy: 'hunt-batch worker' });
      for (const spec of scheduleSpecs(config)) {
        const described = await client.schedule.getHandle(spec.scheduleId).describe();
        expect(described.action).toMatchObject({ workflowType: spec.workflowType, taskQueue: config.temporal.taskQueue });
      }
    } finally {
      await close();
    }

    const exitWithin = (ms: number) =>
      Promise.race([exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`hunt start did not exit within ${ms / 1000} s of its duration`)), ms).unref())]);
    expect(await saying(() => exitWithin(90_000))).toBe(0);
    const sent = Number(/demo producer sent (\d+) records/.exec(output)?.[1]);
    expect(sent).toBeGreaterThan(0);
    const { rows } = await db.pool.query<{ stored: number; quarantined: number }>(
      `SELECT (SELECT count(*)::int FROM events) AS stored, (SELECT count(*)::int FROM quarantine) AS quarantined`,
    );
    // Everything sent was either stored, quarantined or a duplicate (the demo sends ~2%).
    expect(rows[0]!.stored + rows[0]!.quarantined).toBeLessThanOrEqual(sent);
    expect(rows[0]!.stored + rows[0]!.quarantined).toBeGreaterThan(sent * 0.9);
    // And the stop committed what it had read: Postgres's positions are the topic's end, but
    // for the demo's last send, which goes out beside the stop (the consumer may have paused
    // before it came; it is read at the next start, nothing lost).
    const { rows: positions } = await db.pool.query<{ next: number }>(
      'SELECT coalesce(sum(next_offset), 0)::int AS next FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
      [topics.groupId, topics.events],
    );
    const end = await endOffsets(topics.events);
    expect(end).toBe(sent);
    expect(positions[0]!.next).toBeLessThanOrEqual(end);
    // The last send: a tick's, up to a second's worth (200) when a slow tick catches up.
    expect(positions[0]!.next).toBeGreaterThanOrEqual(end - 200);
  }, 360_000);

  it('stops ingest, committing and leaving its group, when the worker cannot start', async () => {
    const topics = await createTestTopics(1);
    // WORKER_METRICS_PORT taken: the worker fails to start after ingest has joined its group.
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const metricsPort = (taken.address() as net.AddressInfo).port;
    try {
      const child = spawn('node', [path.join(projectRoot, 'bin/hunt.js'), 'start', '--no-demo'], {
        env: { ...process.env, DATABASE_URL: db.url, KAFKA_TOPIC_EVENTS: topics.events, KAFKA_TOPIC_DLQ: topics.dlq, INGEST_GROUP_ID: topics.groupId, API_PORT: '18091', WORKER_METRICS_PORT: String(metricsPort) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code, output.slice(-2000)).not.toBe(0);
      expect(output).toMatch(new RegExp(`stopping everything: WORKER_METRICS_PORT ${metricsPort}`));
      // Left, not cut off by the exit: its partitions would wait out the session timeout.
      const admin = testKafka().admin();
      await admin.connect();
      try {
        const { groups } = await admin.describeGroups([topics.groupId]);
        expect(groups[0]?.members ?? []).toHaveLength(0);
      } finally {
        await admin.disconnect();
      }
    } finally {
      taken.close();
    }
  }, 180_000);
});
