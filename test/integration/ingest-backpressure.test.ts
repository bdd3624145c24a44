/**
 * Backpressure end to end (DESIGN invariant 3), on the real Kafka and Postgres: while a
 * running `hunt ingest` cannot commit, it stops taking records once its commit lanes are
 * full, however large the backlog, and reads on (every event applied once) when Postgres
 * lets it commit again. The bound itself is unit-tested (batcher.test.ts,
 * batch-handler.test.ts); this checks the wiring between consumer, handler and lanes.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { foldEvents } from '../../src/rules/reference';
import { createTestTopics, projectionOf, startIngestProcess, waitCaughtUp } from '../helpers/ingest';
import { eventCount, eventsFor, metricsOf, readyz, recordsRead, send, sleep, useIngestFaultKit } from '../helpers/ingest-faults';
import { waitFor } from '../helpers/wait';

const { database, track, onCleanup } = useIngestFaultKit();

const MAX_BATCH_EVENTS = 1000;
const COMMIT_LANES = 2;
/**
 * The most records the process may have taken while no commit succeeds. Per lane (batcher.ts):
 * the micro-batch committing (at most the target, which never passes maxBatchEvents), the
 * next one buffered until it reaches the target, and the one slice that took it there (a
 * slice is at most maxBatchEvents records; batch-handler.ts cuts them at 250). A record is
 * counted read only once its lane took it; so 3 × maxBatchEvents per lane.
 */
const HELD_BOUND = COMMIT_LANES * 3 * MAX_BATCH_EVENTS;
/** Several times the bound: a consumer that kept fetching would take all of it within seconds. */
const BACKLOG = 50_000;

describe('backpressure while commits are blocked', () => {
  it('stops taking records at the lanes\' bound, far below the backlog, and applies every event once after', { timeout: 120_000 }, async () => {
    expect(BACKLOG).toBeGreaterThan(8 * HELD_BOUND);
    const db = await database();
    const topics = await createTestTopics(4);
    const ingest = track(startIngestProcess(db.url, topics, {
      INGEST_MAX_BATCH_EVENTS: String(MAX_BATCH_EVENTS),
      INGEST_COMMIT_LANES: String(COMMIT_LANES),
    }));
    await ingest.ready();

    // Every hot-path commit writes the hunts' fence rows first: with the table locked, each
    // waits (well inside the 110 s statement limit) and none commits.
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    let locked = true;
    const unlock = async () => {
      if (!locked) return;
      locked = false;
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    };
    // If the test fails while the lock is held, the database's disposal would wait on it forever.
    onCleanup(unlock);
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE hunts IN ACCESS EXCLUSIVE MODE');

    const events = eventsFor('bp', BACKLOG);
    await send(topics.events, events);

    // The whole backlog is in the topic: a count that stands still for 3 s now stands still
    // because the lanes are full, not because there is nothing left to fetch, nor one slow
    // fetch (the broker is shared with whatever else runs).
    const readings: number[] = [];
    const held = await waitFor('records read to stop growing', async () => {
      readings.push(recordsRead(await metricsOf(ingest)));
      const last = readings.slice(-4);
      return last.length === 4 && last[0]! > 0 && last.every((n) => n === last[0]) ? last[0] : undefined;
    }, { timeoutMs: 40_000, intervalMs: 1000 });
    expect(held).toBeLessThanOrEqual(HELD_BOUND);
    await sleep(3000);
    expect(recordsRead(await metricsOf(ingest))).toBe(held);
    // The lock really held every commit back: nothing stored, so everything read is held.
    expect(await eventCount(db)).toBe(0);

    await unlock();
    await waitCaughtUp(db.pool, topics, 60_000);
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    const { rows } = await db.pool.query<{ events: number; applied: number }>(
      'SELECT (SELECT count(*)::int FROM events) AS events, (SELECT sum(events_applied)::int FROM hunts) AS applied',
    );
    expect(rows[0]).toEqual({ events: BACKLOG, applied: BACKLOG });
    expect(recordsRead(await metricsOf(ingest))).toBeGreaterThanOrEqual(BACKLOG);
    // It waited; it did not crash or restart, and it is healthy again.
    expect(ingest.child.exitCode).toBeNull();
    expect(ingest.child.signalCode).toBeNull();
    await waitFor('readiness to be 200', async () => (await readyz(ingest)).status === 200, { timeoutMs: 15_000, intervalMs: 250 });
  });
});
