/**
 * The hot path sends a micro-batch's events with a plain INSERT, leaving out those its memory
 * of stored eventIds holds (src/ingest/known-events.ts). On the real Kafka and Postgres: an
 * eventId stored by another path (here a backfill's way, applyEvents), which the consumer
 * cannot know of, changes nothing and costs one extra transaction, counted; one the consumer
 * stored itself is left out without that cost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { parseOccurredAt } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound, joined } from '../helpers/event-builders';
import { createTestTopics, projectionOf, sendRecords, startIngestProcess, waitCaughtUp, type IngestProcess, type TestTopics } from '../helpers/ingest';

const base = Date.now() - 3_600_000;
const at = (seconds: number) => new Date(base + seconds * 1000).toISOString();
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const recordsOf = (events: readonly HuntEvent[]) => events.map((e) => ({ key: e.huntId, value: json(e) }));

const storedElsewhere = clueFound({ eventId: 'b1', huntId: 'h', playerId: 'ann', clueId: 'c1', points: 30, occurredAt: at(1) });
const sent = [
  joined({ eventId: 'k1', huntId: 'h', playerId: 'ann', displayName: 'Ann', occurredAt: at(2) }),
  clueFound({ eventId: 'k2', huntId: 'h', playerId: 'bo', clueId: 'c1', points: 20, occurredAt: at(3) }),
];
const later = clueFound({ eventId: 'k3', huntId: 'h', playerId: 'ann', clueId: 'c2', points: 10, occurredAt: at(4) });
const last = clueFound({ eventId: 'k4', huntId: 'h', playerId: 'bo', clueId: 'c2', points: 15, occurredAt: at(5) });

const db = useTestDatabase();
let topics: TestTopics;
let ingest: IngestProcess;

beforeAll(async () => {
  const instant = parseOccurredAt(storedElsewhere.occurredAt);
  if (!instant) throw new Error('bad test time');
  await withTransaction(db.pool, (client) => applyEvents(client, [{ event: storedElsewhere, instant, source: 'backfill:test' }]));
  topics = await createTestTopics(1);
  ingest = startIngestProcess(db.url, topics);
  await ingest.ready();
});

afterAll(async () => {
  await ingest?.kill('SIGTERM');
});

/** A counter's value on the /metrics of `process` (NaN when it is not there). */
const metricOf = async (process: IngestProcess, name: string): Promise<number> => {
  const text = await (await fetch(`${process.apiUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
};
const metric = (name: string) => metricOf(ingest, name);

describe('the hot path sending events with a plain insert', () => {
  it('leaves out an eventId it stored itself, at no cost', async () => {
    await sendRecords(topics.events, recordsOf(sent));
    await waitCaughtUp(db.pool, topics);
    // k2 again with another payload: the eventId alone decides. Sent with the plain insert
    // (no conflict has paused it), it would fail on the primary key and count a conflict.
    await sendRecords(topics.events, recordsOf([{ ...sent[1], payload: { clueId: 'c1', points: 99 } } as HuntEvent, later]));
    await waitCaughtUp(db.pool, topics);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([storedElsewhere, ...sent, later]));
    expect(await metric('hunt_ingest_plain_insert_conflicts_total')).toBe(0);
    expect(await metric('hunt_ingest_events_accepted_total')).toBe(3);
    expect(await metric('hunt_ingest_duplicates_skipped_total')).toBe(1);
  });

  it('commits a batch holding an eventId stored by another path once, at the cost of a counted retry', async () => {
    await sendRecords(topics.events, recordsOf([storedElsewhere, last]));
    await waitCaughtUp(db.pool, topics);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([storedElsewhere, ...sent, later, last]));
    expect(await metric('hunt_ingest_plain_insert_conflicts_total')).toBe(1);
    expect(await metric('hunt_ingest_events_accepted_total')).toBe(4);
    expect(await metric('hunt_ingest_duplicates_skipped_total')).toBe(2);
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
    expect(rows[0]?.n).toBe(5);
  });
});

describe('the hot path leaving out repeats of eventIds it committed', () => {
  let twoPartitions: TestTopics;
  let second: IngestProcess;
  beforeAll(async () => {
    twoPartitions = await createTestTopics(2);
    second = startIngestProcess(db.url, twoPartitions);
    await second.ready();
  });
  afterAll(async () => {
    await second?.kill('SIGTERM');
  });

  const conflicts = () => metricOf(second, 'hunt_ingest_plain_insert_conflicts_total');
  const original = clueFound({ eventId: 'x1', huntId: 'hx', playerId: 'ann', clueId: 'c1', points: 40, occurredAt: at(10) });

  it('leaves out only a repeat read from the partition that stored the original; one from another partition goes to the table', async () => {
    await sendRecords(twoPartitions.events, [{ key: 'hx', value: json(original), partition: 0 }]);
    await waitCaughtUp(db.pool, twoPartitions);
    // The same partition: left out, no conflict.
    await sendRecords(twoPartitions.events, [{ key: 'hx', value: json(original), partition: 0 }]);
    await waitCaughtUp(db.pool, twoPartitions);
    expect(await conflicts()).toBe(0);
    // Another partition: the batch checks that partition's floor, not the original's, so the
    // table decides (a conflict, and the batch goes again with ON CONFLICT).
    await sendRecords(twoPartitions.events, [{ key: 'hx', value: json({ ...original, payload: { clueId: 'c1', points: 99 } }), partition: 1 }]);
    await waitCaughtUp(db.pool, twoPartitions);
    expect(await conflicts()).toBe(1);
    const { rows } = await db.pool.query<{ n: number; score: number }>(
      `SELECT (SELECT count(*)::int FROM events WHERE event_id = 'x1') AS n, (SELECT score::int FROM player_scores WHERE hunt_id = 'hx' AND player_id = 'ann') AS score`,
    );
    expect(rows[0]).toEqual({ n: 1, score: 40 });
  });
});
