/**
 * Live leaderboards (CONTRACT.md §2) on the real Kafka, Postgres and `hunt ingest`: the first
 * message on connect, also for a hunt with no events yet; a message after each committed
 * change, coalesced under load to at most one per 100 ms; heartbeats on idle; a clean close
 * when the client goes away, with nothing left behind after 1,000 connect/disconnect cycles.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { foldEvents, leaderboardOf } from '../../src/rules/reference';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound, joined, recordOf } from '../helpers/event-builders';
import { createTestTopics, sendRecords, startIngestProcess, testKafka, waitCaughtUp, type IngestProcess, type TestTopics } from '../helpers/ingest';
import { connectSse } from '../helpers/sse';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();
let topics: TestTopics;
let ingest: IngestProcess;
const sent: HuntEvent[] = [];
let clock = Date.now() - 3_600_000;
const at = () => new Date(clock++).toISOString();
let serial = 0;

async function send(events: HuntEvent[]): Promise<void> {
  sent.push(...events);
  await sendRecords(topics.events, events.map((e) => ({ key: e.huntId, value: recordOf(e) })));
}
const board = (huntId: string, limit = 10) => ({ huntId, entries: leaderboardOf(foldEvents(sent), huntId).slice(0, limit) });
const parse = (data: string) => JSON.parse(data) as { huntId: string; asOf: string | null; entries: { playerId: string; score: number }[] };
const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${ingest.apiUrl}/metrics`)).text())?.[1]);

beforeAll(async () => {
  topics = await createTestTopics(2);
  // A long-lived reply cache: a change must drop a hunt's cached answers whatever their age.
  ingest = startIngestProcess(db.url, topics, { API_STREAM_HEARTBEAT_MS: '300', API_LEADERBOARD_CACHE_MS: '60000' });
  await ingest.ready();
  await send([joined({ eventId: 'j1', huntId: 'live-a', playerId: 'ann', displayName: 'Ann', occurredAt: at() })]);
  await waitCaughtUp(db.pool, topics);
});

afterAll(async () => {
  await ingest?.kill('SIGTERM');
});

describe('GET /hunts/{huntId}/leaderboard/stream', () => {
  it('sends the leaderboard on connect, exactly the endpoint JSON', async () => {
    const stream = connectSse(`${ingest.apiUrl}/hunts/live-a/leaderboard/stream?limit=5`);
    try {
      expect(await stream.status).toBe(200);
      const first = await stream.next(0);
      expect(first.event).toBe('leaderboard');
      const endpoint = await (await fetch(`${ingest.apiUrl}/hunts/live-a/leaderboard?limit=5`)).text();
      expect(first.data).toBe(endpoint);
      expect(parse(first.data)).toMatchObject(board('live-a', 5));
    } finally {
      stream.close();
    }
  });

  it('streams a hunt with no events yet: no entries first, then its first player', async () => {
    const stream = connectSse(`${ingest.apiUrl}/hunts/live-new/leaderboard/stream`);
    try {
      expect(parse((await stream.next(0)).data)).toEqual({ huntId: 'live-new', asOf: null, entries: [] });
      await send([clueFound({ eventId: `n${serial++}`, huntId: 'live-new', playerId: 'bo', clueId: 'c1', points: 40, occurredAt: at() })]);
      const second = parse((await stream.next(1)).data);
      expect(second.entries).toMatchObject([{ playerId: 'bo', score: 40 }]);
    } finally {
      stream.close();
    }
  });

  it('answers a read after a pushed change with the change, however long the reply cache keeps answers', async () => {
    const stream = connectSse(`${ingest.apiUrl}/hunts/live-a/leaderboard/stream`);
    try {
      await stream.next(0);
      const before = await (await fetch(`${ingest.apiUrl}/hunts/live-a/leaderboard`)).text(); // cached now
      await send([clueFound({ eventId: `r${serial++}`, huntId: 'live-a', playerId: 'cached', clueId: 'c1', points: 7, occurredAt: at() })]);
      const pushed = (await stream.next(1)).data;
      expect(pushed).not.toBe(before);
      expect(await (await fetch(`${ingest.apiUrl}/hunts/live-a/leaderboard`)).text()).toBe(pushed);
    } finally {
      stream.close();
    }
  });

  it('sends one message after each committed change', async () => {
    const stream = connectSse(`${ingest.apiUrl}/hunts/live-a/leaderboard/stream`);
    try {
      await stream.next(0);
      for (let i = 1; i <= 3; i++) {
        await send([clueFound({ eventId: `c${serial++}`, huntId: 'live-a', playerId: 'ann', clueId: `k${i}`, points: 10, occurredAt: at() })]);
        const message = parse((await stream.next(i)).data);
        expect(message.entries[0]).toMatchObject({ playerId: 'ann', score: 10 * i });
        // Quiet after it: no message without a change (heartbeats are comments). Two
        // heartbeats after the message mean a full heartbeat interval (300 ms, three
        // coalescing windows) passed on the server's own clock.
        const beats = stream.comments;
        await waitFor('two heartbeats after the message', () => stream.comments >= beats + 2, { timeoutMs: 5000, intervalMs: 20 });
        expect(stream.events).toHaveLength(i + 1);
      }
    } finally {
      stream.close();
    }
  });

  it('coalesces a burst: at most one message per 100 ms, the last one current', async () => {
    const stream = connectSse(`${ingest.apiUrl}/hunts/live-a/leaderboard/stream`);
    try {
      await stream.next(0);
      const commitsBefore = await metric('hunt_ingest_transaction_seconds_count');
      // Many small sends on one producer, a few ms apart: many commits, each a change of the hunt.
      const burst = Array.from({ length: 400 }, (_, i) => clueFound({ eventId: `b${serial++}`, huntId: 'live-a', playerId: `p${i % 40}`, clueId: `x${i}`, points: 1, occurredAt: at() }));
      const started = Date.now();
      const producer = testKafka().producer();
      await producer.connect();
      try {
        for (let i = 0; i < burst.length; i += 10) {
          const part = burst.slice(i, i + 10);
          sent.push(...part);
          await producer.send({ topic: topics.events, messages: part.map((e) => ({ key: e.huntId, value: recordOf(e) })) });
        }
      } finally {
        await producer.disconnect();
      }
      await waitCaughtUp(db.pool, topics);
      await waitFor('the last message to show every event', () => {
        const last = stream.events[stream.events.length - 1];
        return last !== undefined && JSON.stringify(parse(last.data).entries) === JSON.stringify(board('live-a').entries);
      }, { timeoutMs: 10_000 });
      const commits = (await metric('hunt_ingest_transaction_seconds_count')) - commitsBefore;
      const messages = stream.events.length - 1;
      // From the first send to the last message's arrival: the windows the burst could use.
      const span = (stream.events[stream.events.length - 1] as { at: number }).at - started;
      // More commits than 100 ms windows (the usual case; not on a machine slow enough to
      // commit less than every 100 ms): the throttle had to coalesce them.
      if (commits > Math.ceil(span / 100) + 1) expect(messages).toBeLessThan(commits);
      const gaps = stream.events.slice(1).map((e, i) => e.at - (stream.events[i] as { at: number }).at);
      // Times of arrival here: a pause of this process can bring two in one read (one gap
      // near 0), never a stream sent unthrottled, which shows a gap under 100 ms per commit.
      expect(gaps.filter((gap) => gap < 95).length).toBeLessThanOrEqual(1);
      expect(messages).toBeLessThanOrEqual(Math.ceil(span / 100) + 1);
    } finally {
      stream.close();
    }
  });

  it('keeps an idle stream open with comment lines', async () => {
    const stream = connectSse(`${ingest.apiUrl}/hunts/live-a/leaderboard/stream`);
    try {
      await stream.next(0);
      await waitFor('two heartbeats', () => stream.comments >= 2, { timeoutMs: 5000 });
      expect(stream.events).toHaveLength(1);
    } finally {
      stream.close();
    }
  });

  it('closes cleanly when clients go away: nothing left after 1,000 connect/disconnect cycles', async () => {
    const agent = new http.Agent({ keepAlive: false, maxSockets: 50 });
    for (let round = 0; round < 20; round++) {
      const streams = Array.from({ length: 50 }, (_, i) => connectSse(`${ingest.apiUrl}/hunts/live-a/leaderboard/stream?limit=${1 + (i % 10)}`, agent));
      await Promise.all(streams.map((s) => s.next(0)));
      for (const s of streams) s.close();
    }
    agent.destroy();
    await waitFor('every stream closed on the server', async () => (await metric('hunt_api_streams_open')) === 0, { timeoutMs: 10_000 });
    // Still serving, and still pushing to a new stream.
    const stream = connectSse(`${ingest.apiUrl}/hunts/live-a/leaderboard/stream`);
    try {
      await stream.next(0);
      await send([clueFound({ eventId: `z${serial++}`, huntId: 'live-a', playerId: 'ann', clueId: 'zz', points: 5, occurredAt: at() })]);
      expect(parse((await stream.next(1)).data).entries).toEqual(expect.arrayContaining([expect.objectContaining({ playerId: 'ann' })]));
    } finally {
      stream.close();
    }
  });
});
