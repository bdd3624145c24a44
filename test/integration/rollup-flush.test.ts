/**
 * rollupFlush on the real Temporal server and Postgres: windows equal a from-scratch
 * aggregation of the raw events, a late event is added to its old window, and a second run
 * with nothing new changes nothing.
 */
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../src/worker/activities';
import { loadConfig, projectRoot } from '../../src/config';
import { createLogger } from '../../src/log';
import { flushRollupChunk } from '../../src/store/batch/rollups';
import { settledBound, UnsettledWritersError } from '../../src/store/batch/settled-seq';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { parseOccurredAt } from '../../src/events/schema';
import { useTestDatabase } from '../helpers/database-fixture';
import { rollupsFromScratch, storedRollups, type RollupUnit } from '../helpers/rollups';
import { clueFound, hintUsed, treasureClaimed } from '../helpers/event-builders';
import { quietTemporalRuntime } from '../helpers/temporal';
import { uniqueName } from '../helpers/wait';
import type { HuntEvent } from '../../src/events/schema';

const config = loadConfig();
const db = useTestDatabase();
let worker: Worker;
let running: Promise<void>;
let client: Client;
let connection: Connection;
let workerConnection: NativeConnection;
const taskQueue = uniqueName('rollups');

beforeAll(async () => {
  quietTemporalRuntime();
  connection = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection, namespace: config.temporal.namespace });
  workerConnection = await NativeConnection.connect({ address: config.temporal.address });
  worker = await Worker.create({
    connection: workerConnection,
    namespace: config.temporal.namespace,
    taskQueue,
    workflowsPath: path.join(projectRoot, 'workflows/index.ts'),
    activities: createActivities({
      pool: db.pool,
      kafka: new Kafka({ brokers: config.kafka.brokers, logLevel: logLevel.NOTHING }),
      config,
      logger: createLogger({ logLevel: 'warn' }),
    }),
  });
  running = worker.run();
});
afterAll(async () => {
  worker?.shutdown();
  await running;
  await workerConnection?.close();
  await connection?.close();
});

const store = (events: HuntEvent[]) =>
  withTransaction(db.pool, (c) => applyEvents(c, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }))));

const flush = () => client.workflow.execute('rollupFlush', { taskQueue, workflowId: uniqueName('rollup'), args: [{ settleMs: 0 }] });

const fromScratch = (unit: RollupUnit) => rollupsFromScratch(db.pool, unit);

describe('rollupFlush', () => {
  it('aggregates per minute and hour, adds late events to the windows they fall in, and is idempotent', async () => {
    await store([
      clueFound({ eventId: 'a1', huntId: 'h1', playerId: 'p1', points: 10, occurredAt: '2026-11-20T10:00:05Z' }),
      clueFound({ eventId: 'a2', huntId: 'h1', playerId: 'p2', clueId: 'c2', points: 20, occurredAt: '2026-11-20T10:00:50Z' }),
      hintUsed({ eventId: 'a3', huntId: 'h1', playerId: 'p1', penalty: 5, occurredAt: '2026-11-20T10:01:10Z' }),
      treasureClaimed({ eventId: 'a4', huntId: 'h2', playerId: 'p9', occurredAt: '2026-11-20T11:30:00Z' }),
    ]);
    const first = await flush();
    expect(first).toMatchObject({ events: 4, watermark: expect.any(Number) });
    expect(await storedRollups(db.pool, 'minute')).toEqual(await fromScratch('minute'));
    expect(await storedRollups(db.pool, 'hour')).toEqual(await fromScratch('hour'));

    // A late event for 10:00 arrives after that window was flushed.
    await store([clueFound({ eventId: 'late', huntId: 'h1', playerId: 'p3', clueId: 'c3', points: 7, occurredAt: '2026-11-20T10:00:30Z' })]);
    const second = await flush();
    expect(second).toMatchObject({ events: 1, minuteWindows: 1, hourWindows: 1 });
    const minutes = await storedRollups(db.pool, 'minute');
    expect(minutes).toEqual(await fromScratch('minute'));
    expect(minutes[0]).toMatchObject({ hunt_id: 'h1', events: 3, players: 3, clue_points: 37 });
    expect(await storedRollups(db.pool, 'hour')).toEqual(await fromScratch('hour'));

    expect(await flush()).toMatchObject({ events: 0, chunks: 0 });
    expect(await storedRollups(db.pool, 'minute')).toEqual(minutes);
  });

  it('builds hours from minutes and noted players that equal the raw events, chunk after small chunk, late events and all', async () => {
    // 3 hunts over 3 hours, 40 players who come back in many minutes of an hour (distinct
    // players do not add up across minutes), a quarter of the events late by up to an hour.
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const base = Date.parse('2026-11-21T09:00:00Z');
    const events: HuntEvent[] = Array.from({ length: 2_000 }, (_, i) => {
      const late = random() < 0.25 ? -Math.floor(random() * 3_600_000) : 0;
      const at = new Date(Math.max(base, base + Math.floor((i / 2_000) * 3 * 3_600_000) + late)).toISOString();
      const fields = { eventId: `r-${i}`, huntId: `rh${i % 3}`, playerId: `p${Math.floor(random() * 40)}`, occurredAt: at };
      return i % 5 === 0 ? hintUsed({ ...fields, penalty: 3 }) : clueFound({ ...fields, clueId: `c${i}`, points: i % 17 });
    });
    for (let i = 0; i < events.length; i += 250) {
      await store(events.slice(i, i + 250));
      while (await flushRollupChunk(db.pool, 97, 0)); // many small chunks, each touching hours flushed before
    }
    expect(await storedRollups(db.pool, 'minute')).toEqual(await fromScratch('minute'));
    expect(await storedRollups(db.pool, 'hour')).toEqual(await fromScratch('hour'));
  });

  it('does not move its watermark past a seq an uncommitted transaction still holds', async () => {
    // A writer draws its seq, then takes long to commit (a lane waiting on a hunt's fence, say).
    const slow = await db.pool.connect();
    try {
      await slow.query('BEGIN');
      await applyEvents(slow, [{ event: clueFound({ eventId: 'slow', huntId: 'h7', playerId: 'p1', points: 3, occurredAt: '2026-11-21T09:00:00Z' }), instant: parseOccurredAt('2026-11-21T09:00:00Z')!, source: 'test' }]);
      // Meanwhile another writer commits a later seq, of another hunt.
      await store([clueFound({ eventId: 'quick', huntId: 'h8', playerId: 'p2', points: 4, occurredAt: '2026-11-21T09:00:10Z' })]);

      let flushed = false;
      const flushing = flushRollupChunk(db.pool, 1000, 0).then((result) => {
        flushed = true;
        return result;
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(flushed).toBe(false); // waits for the writer, rather than skip its seq
      await slow.query('COMMIT');
      expect(await flushing).toMatchObject({ events: 2 });
    } finally {
      await slow.query('ROLLBACK').catch(() => undefined);
      slow.release();
    }
    expect(await flush()).toMatchObject({ events: 0 });
    expect(await storedRollups(db.pool, 'minute')).toEqual(await fromScratch('minute'));
  });

  it('fails naming a writer that outlasts the wait, rather than succeed having done nothing', async () => {
    // A session that inserted an event and was left idle in its transaction.
    const idle = await db.pool.connect();
    try {
      await idle.query(`SET application_name = 'forgotten-psql'`);
      await idle.query('BEGIN');
      await applyEvents(idle, [{ event: clueFound({ eventId: 'idle', huntId: 'h9', playerId: 'p1', points: 1, occurredAt: '2026-11-21T10:00:00Z' }), instant: parseOccurredAt('2026-11-21T10:00:00Z')!, source: 'test' }]);
      await store([clueFound({ eventId: 'after-idle', huntId: 'h10', playerId: 'p2', points: 2, occurredAt: '2026-11-21T10:00:05Z' })]);
      const { rows } = await idle.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const attempt = settledBound(db.pool, 0, 0, 1000, 300);
      await expect(attempt).rejects.toBeInstanceOf(UnsettledWritersError);
      await expect(attempt).rejects.toThrow(new RegExp(`within 300 ms.*pid ${rows[0]!.pid} \\(application "forgotten-psql", user "[^"]*", idle in transaction`));
    } finally {
      await idle.query('ROLLBACK').catch(() => undefined);
      idle.release();
    }
    expect(await flush()).toMatchObject({ events: 1 }); // once it ended, the flush goes on
  });

  it('tries a chunk that outlasts the statement limit again at half the size, down to what passes', { timeout: 90_000 }, async () => {
    // Stands in for late events into busy windows: a chunk writing more than 5 minute windows
    // is cancelled as the statement limit would cancel it (57014).
    await db.pool.query(`CREATE FUNCTION slow_windows() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE n int := coalesce(nullif(current_setting('rollup_test.windows', true), ''), '0')::int + 1;
      BEGIN
        PERFORM set_config('rollup_test.windows', n::text, true);
        IF n > 5 THEN RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014'; END IF;
        RETURN NEW;
      END $$`);
    await db.pool.query('CREATE TRIGGER slow_windows BEFORE INSERT ON rollup_minute FOR EACH ROW EXECUTE FUNCTION slow_windows()');
    try {
      const base = Date.parse('2026-11-22T08:00:00Z');
      await store(Array.from({ length: 40 }, (_, i) => clueFound({ eventId: `spread-${i}`, huntId: 'h-spread', playerId: 'p1', clueId: `c${i}`, points: 1, occurredAt: new Date(base + i * 60_000).toISOString() })));
      // 40 windows in one chunk of up to 50,000 events: halved to chunks of at most 5 events.
      expect(await flush()).toMatchObject({ events: 40, minuteWindows: 40 });
    } finally {
      await db.pool.query('DROP TRIGGER slow_windows ON rollup_minute');
      await db.pool.query('DROP FUNCTION slow_windows()');
    }
    expect(await storedRollups(db.pool, 'minute')).toEqual(await fromScratch('minute'));
    expect(await storedRollups(db.pool, 'hour')).toEqual(await fromScratch('hour'));
  });
});
