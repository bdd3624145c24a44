/**
 * The hot path against CONTRACT.md on the real Kafka and Postgres: duplicates have no
 * effect, each reject reason lands in the DLQ (with its headers) and in quarantine while
 * processing continues past it, and the read API serves the projections.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { MAX_EVENT_BYTES } from '../../src/events/validate';
import { foldEvents, leaderboardOf } from '../../src/rules/reference';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound, hintUsed, joined, left, treasureClaimed } from '../helpers/event-builders';
import {
  createTestTopics,
  projectionOf,
  readTopic,
  sendRecords,
  startIngestProcess,
  waitCaughtUp,
  type IngestProcess,
  type TestTopics,
} from '../helpers/ingest';

const base = Date.now() - 3_600_000;
const at = (seconds: number) => new Date(base + seconds * 1000).toISOString();

const valid: HuntEvent[] = [
  joined({ eventId: 'e01', playerId: 'alice', displayName: 'Alice', occurredAt: at(1) }),
  joined({ eventId: 'e02', playerId: 'bob', occurredAt: at(2) }),
  clueFound({ eventId: 'e03', playerId: 'alice', clueId: 'c1', points: 50, occurredAt: at(3) }),
  clueFound({ eventId: 'e04', playerId: 'bob', clueId: 'c1', points: 40, occurredAt: at(4) }),
  hintUsed({ eventId: 'e05', playerId: 'bob', clueId: 'c2', penalty: 15, occurredAt: at(5) }),
  treasureClaimed({ eventId: 'e06', playerId: 'bob', treasureId: 't1', points: 300, occurredAt: at(6) }),
  treasureClaimed({ eventId: 'e07', playerId: 'alice', treasureId: 't1', points: 300, occurredAt: at(7) }),
  clueFound({ eventId: 'e08', playerId: 'alice', clueId: 'c1', points: 50, occurredAt: at(8) }),
  left({ eventId: 'e09', playerId: 'bob', occurredAt: at(9) }),
].map((e) => ({ ...e, huntId: 'hunt-a' }));
const afterRejects: HuntEvent[] = [
  clueFound({ eventId: 'e10', huntId: 'hunt-a', playerId: 'carol', clueId: 'c3', points: 70, occurredAt: at(10) }),
];

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const rejects = [
  { reason: 'too_large', value: json({ ...valid[2], payload: { clueId: 'c9', points: 1, pad: 'x'.repeat(MAX_EVENT_BYTES) } }) },
  { reason: 'invalid_json', value: Buffer.from('{"eventId": "half') },
  { reason: 'invalid_json', value: null },
  { reason: 'unknown_type', value: json({ ...valid[2], eventId: 'x1', type: 'treasure.buried' }) },
  { reason: 'schema_violation', value: json({ ...valid[2], eventId: 'x2', payload: { clueId: 'c9', points: 1001 } }) },
  { reason: 'future_timestamp', value: json({ ...valid[2], eventId: 'x3', occurredAt: new Date(Date.now() + 3_600_000).toISOString() }) },
];

const db = useTestDatabase();
let topics: TestTopics;
let ingest: IngestProcess;

beforeAll(async () => {
  topics = await createTestTopics(2);
  ingest = startIngestProcess(db.url, topics);
  await ingest.ready();
  await sendRecords(topics.events, [
    ...valid.map((e) => ({ key: e.huntId, value: json(e) })),
    // Same eventId again: once identical, once with another payload. Neither may count.
    { key: 'hunt-a', value: json(valid[2]) },
    { key: 'hunt-a', value: json({ ...valid[2], payload: { clueId: 'c1', points: 999 } }) },
    // ...and under another hunt, which it must not bring into being.
    { key: 'hunt-a', value: json({ ...valid[2], huntId: 'ghost' }) },
    ...rejects.map((r) => ({ key: 'hunt-a', value: r.value })),
    ...afterRejects.map((e) => ({ key: e.huntId, value: json(e) })),
  ]);
  await waitCaughtUp(db.pool, topics);
});

afterAll(async () => {
  await ingest?.kill('SIGTERM');
});

/** Where a stored event was read from (events.source: kafka:<topic>:<partition>:<offset>). */
async function sourceOf(eventId: string): Promise<{ partition: number; offset: number }> {
  const { rows } = await db.pool.query<{ source: string }>('SELECT source FROM events WHERE event_id = $1', [eventId]);
  const [partition, offset] = (rows[0]?.source ?? '').split(':').slice(-2).map(Number);
  return { partition: partition as number, offset: offset as number };
}

describe('hot path', () => {
  it('applies exactly the reference fold of the accepted events; duplicates change nothing', async () => {
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...valid, ...afterRejects]));
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM events');
    expect(rows[0].n).toBe(valid.length + afterRejects.length);
    const alice = (await projectionOf(db.pool)).players.find((p) => p.playerId === 'alice');
    expect(alice?.score).toBe(50); // not 999: the second record with e03 had no effect
  });

  it('sends each rejected record to the DLQ unchanged, with reason, detail and source headers', async () => {
    const dlq = await readTopic(topics.dlq, rejects.length);
    expect(dlq.map((r) => r.headers['error.reason'])).toEqual(rejects.map((r) => r.reason));
    dlq.forEach((record, i) => {
      expect(record.key).toBe('hunt-a');
      expect(record.value).toEqual(rejects[i]?.value);
      expect(record.headers['error.detail']?.length).toBeGreaterThan(0);
      expect(record.headers['source.topic']).toBe(topics.events);
    });
    // Each copy names where its record was: the rejects were sent in one batch right before
    // e10, on the partition of hunt-a's key, so they sit at the six offsets before e10's.
    const { partition, offset } = await sourceOf('e10');
    expect(dlq.map((r) => [r.headers['source.partition'], r.headers['source.offset']])).toEqual(rejects.map((_, i) => [String(partition), String(offset - rejects.length + i)]));
    expect(dlq.find((r) => r.headers['error.reason'] === 'schema_violation')?.headers['error.detail']).toMatch(/payload\.points/);
  });

  it('quarantines each rejected record with its reason and source position', async () => {
    const { rows } = await db.pool.query(
      'SELECT reason, detail, record_key, record_value, source_topic, source_partition, source_offset FROM quarantine ORDER BY source_offset',
    );
    expect(rows.map((r) => r.reason)).toEqual(rejects.map((r) => r.reason));
    const { partition, offset } = await sourceOf('e10');
    expect(rows.map((r) => [r.source_partition, Number(r.source_offset)])).toEqual(rejects.map((_, i) => [partition, offset - rejects.length + i]));
    rows.forEach((row, i) => {
      expect(row.source_topic).toBe(topics.events);
      expect(row.record_key?.toString()).toBe('hunt-a');
      expect(row.record_value).toEqual(rejects[i]?.value);
      expect(row.detail.length).toBeGreaterThan(0);
    });
  });
});

describe('read API', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked by the assertions
  const get = async (path: string): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${ingest.apiUrl}${path}`);
    return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text() };
  };

  it('serves the leaderboard in contract order with asOf', async () => {
    const { status, body } = await get('/hunts/hunt-a/leaderboard');
    expect(status).toBe(200);
    const expected = leaderboardOf(foldEvents([...valid, ...afterRejects]), 'hunt-a');
    expect(body).toEqual({ huntId: 'hunt-a', asOf: at(10), entries: expected });
    expect(body.entries.map((e: { playerId: string }) => e.playerId)).toEqual(['bob', 'carol', 'alice']);
    expect(body.entries[0]).toMatchObject({ rank: 1, score: 325, cluesFound: 1, treasuresClaimed: 1, active: false, displayName: null });
    expect((await get('/hunts/hunt-a/leaderboard?limit=1')).body.entries).toHaveLength(1);
  });

  it('serves one player, with rank', async () => {
    expect(await get('/hunts/hunt-a/players/alice')).toEqual({
      status: 200,
      body: { rank: 3, playerId: 'alice', displayName: 'Alice', score: 50, cluesFound: 1, treasuresClaimed: 0, active: true },
    });
  });

  it('answers 404 for unknown hunts and players, 400 for bad parameters', async () => {
    expect(await get('/hunts/nope/leaderboard')).toMatchObject({ status: 404, body: { error: expect.stringContaining('nope') } });
    // A hunt named only by a duplicate eventId had no event applied: it is as unknown as 'nope'.
    expect(await get('/hunts/ghost/leaderboard')).toMatchObject({ status: 404, body: { error: expect.stringContaining('ghost') } });
    expect(await get('/hunts/ghost/players/alice')).toMatchObject({ status: 404, body: { error: expect.stringContaining('ghost') } });
    expect(await get('/hunts/hunt-a/players/nobody')).toMatchObject({ status: 404, body: { error: expect.any(String) } });
    for (const limit of ['0', '1001', 'ten', '-1']) {
      expect(await get(`/hunts/hunt-a/leaderboard?limit=${limit}`)).toMatchObject({ status: 400, body: { error: expect.stringContaining('limit') } });
    }
    expect(await get('/hunts/bad%20id/leaderboard')).toMatchObject({ status: 400 });
  });

  it('reports health, readiness and metrics', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect(await get('/readyz')).toMatchObject({ status: 200, body: { ready: true } });
    const metrics = (await get('/metrics')).body as string;
    expect(metrics).toMatch(/hunt_ingest_events_accepted_total 10\b/);
    expect(metrics).toMatch(/hunt_ingest_duplicates_skipped_total 3\b/);
    expect(metrics).toMatch(/hunt_ingest_rejects_total\{reason="invalid_json"\} 2\b/);
    expect(metrics).toMatch(/hunt_ingest_records_read_total 19\b/);
    expect(metrics).toContain('hunt_ingest_freshness_seconds_bucket');
    expect(metrics).toMatch(/hunt_ingest_fetch_delay_seconds_count 19\b/); // every record read
    expect(metrics).toContain('hunt_ingest_consumer_lag{topic=');
    expect(metrics).toContain('hunt_ingest_transaction_seconds_bucket');
  });
});
