/**
 * The stream routes of the read API on a real HTTP server, with the leaderboard read given
 * by the test (no Postgres): the cap on open streams, the coalescing of a hunt's changes
 * into one read for all its streams, the page's headers, and bad parameters.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ENTRIES_PER_READ, LeaderboardStreams, REFUSED_STREAM_RETRY_MS, type LeaderboardBody, type LeaderboardRequest } from '../../src/api/leaderboard-streams';
import { pageMessages } from '../../src/api/stream-messages';
import { ReplyCache } from '../../src/api/reply-cache';
import { createApiServer } from '../../src/api/server';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';
import { connectSse, type SseConnection } from '../helpers/sse';
import { waitFor } from '../helpers/wait';

const logger = createLogger({ logLevel: 'silent' });
let server: http.Server | undefined;
let streams: LeaderboardStreams | undefined;
let registry = new Registry();
const open: SseConnection[] = [];

/** Each read statement, as the hunts and limits it asked for. */
let statements: LeaderboardRequest[][] = [];

async function serve(readOne: (huntId: string, limit: number) => Promise<LeaderboardBody>, maxStreams = 100): Promise<string> {
  statements = [];
  const read = async (requests: readonly LeaderboardRequest[]) => {
    statements.push([...requests]);
    const pages = await Promise.all(requests.map(async (r) => [r.huntId, await readOne(r.huntId, r.limit)] as const));
    return new Map(pages);
  };
  streams = new LeaderboardStreams({ read, logger, heartbeatMs: 60_000 });
  registry = new Registry();
  const deps = {
    pool: {} as pg.Pool,
    leaderboardCache: new ReplyCache(0),
    streams,
    maxStreams,
    registry,
    logger,
    readiness: async () => ({ ready: true, checks: {} }),
  };
  server = createApiServer(deps, loadConfig({}).api);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function connect(url: string): SseConnection {
  const stream = connectSse(url);
  open.push(stream);
  return stream;
}

afterEach(async () => {
  for (const stream of open.splice(0)) stream.close();
  streams?.close();
  await new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
  server = undefined;
});

const emptyBoard = async (huntId: string): Promise<LeaderboardBody> => ({ huntId, asOf: null, entries: [] });

describe('live leaderboard streams', () => {
  it('refuses streams beyond API_MAX_STREAMS in a way EventSource comes back from, says what to do, and takes them again once some close', async () => {
    const base = await serve(emptyBoard, 2);
    const [a, b] = [connect(`${base}/hunts/h/leaderboard/stream`), connect(`${base}/hunts/h/leaderboard/stream`)];
    await Promise.all([a.next(0), b.next(0)]);
    const refusedAt = () => registry?.getSingleMetric('hunt_api_streams_refused_total')?.get().then((m) => m.values.find((v) => v.labels.reason === 'full')?.value ?? 0);
    const retries: number[] = [];
    for (let i = 0; i < 5; i++) {
      // A 503 would close an EventSource for good; a stream that ends makes it come back after
      // its retry:, drawn apart for each refusal so that refused clients do not return together.
      const refused = await fetch(`${base}/hunts/h/leaderboard/stream`);
      expect(refused.status).toBe(200);
      expect(refused.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      const [retry, comment, ...rest] = (await refused.text()).split('\n');
      expect(rest).toEqual(['', '']);
      expect(comment).toMatch(/^: this server has its most live streams open \(API_MAX_STREAMS 2\): poll \/hunts\/h\/leaderboard/);
      const ms = Number(/^retry: (\d+)$/.exec(retry ?? '')?.[1]);
      expect(ms).toBeGreaterThanOrEqual(REFUSED_STREAM_RETRY_MS.min);
      expect(ms).toBeLessThanOrEqual(REFUSED_STREAM_RETRY_MS.max);
      retries.push(ms);
    }
    expect(new Set(retries).size).toBeGreaterThan(1);
    expect(await refusedAt()).toBe(5);
    expect(streams?.streams).toBe(2);
    // Plain reads are not refused: the cap keeps connections for them.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    a.close();
    await waitFor('the closed stream to be counted out', () => streams?.streams === 1);
    const c = connect(`${base}/hunts/h/leaderboard/stream`);
    expect(await c.status).toBe(200);
    await c.next(0);
  });

  it('reads the changed hunts of a window in one statement, each with its largest limit, and gives each stream its slice', async () => {
    let score = 0;
    const base = await serve(async (huntId, limit) => {
      const entries = Array.from({ length: 20 }, (_, i) => ({ rank: i + 1, playerId: `p${i}`, score: score - i }));
      return { huntId, asOf: null, entries: entries.slice(0, limit) };
    });
    const small = connect(`${base}/hunts/h/leaderboard/stream?limit=2`);
    const large = connect(`${base}/hunts/h/leaderboard/stream?limit=7`);
    const g = connect(`${base}/hunts/g/leaderboard/stream?limit=4`);
    const other = connect(`${base}/hunts/other/leaderboard/stream?limit=3`);
    await Promise.all([small.next(0), large.next(0), g.next(0), other.next(0)]);
    statements = [];

    score = 100;
    streams?.changed(['h', 'g', 'not-streamed']);
    const [s1, l1, g1] = await Promise.all([small.next(1), large.next(1), g.next(1)]);
    expect(statements).toEqual([[{ huntId: 'h', limit: 7 }, { huntId: 'g', limit: 4 }]]);
    expect(JSON.parse(s1.data).entries).toHaveLength(2);
    expect(JSON.parse(l1.data).entries).toHaveLength(7);
    expect(JSON.parse(g1.data).entries).toHaveLength(4);
    expect(JSON.parse(s1.data).entries[0]).toMatchObject({ playerId: 'p0', score: 100 });
    // The other hunt did not change: no read, no message.
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(other.events).toHaveLength(1);
    expect(statements).toHaveLength(1);
  });

  it('closes a stream whose first read fails after its 200 (so EventSource reconnects), counts it, and opens the next', async () => {
    let failNext = true;
    const base = await serve(async (huntId) => {
      if (failNext) {
        failNext = false;
        throw new Error('timeout exceeded when trying to connect');
      }
      return { huntId, asOf: null, entries: [] };
    });
    // EventSource gives up for good on any status but 200: a 503 here stopped live pages.
    const failed = await fetch(`${base}/hunts/h/leaderboard/stream`);
    expect(failed.status).toBe(200);
    expect(await failed.text()).toBe('retry: 2000\n\n');
    await waitFor('the failed stream to be counted out', () => streams?.streams === 0);
    expect(streams?.firstReadFailures).toBe(1);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/^hunt_api_stream_first_reads_failed_total 1$/m);
    const stream = connect(`${base}/hunts/h/leaderboard/stream`);
    expect(JSON.parse((await stream.next(0)).data)).toEqual({ huntId: 'h', asOf: null, entries: [] });
    expect(streams?.firstReadFailures).toBe(1);
  });

  it('bounds a read statement by the entries its hunts ask for, not only by hunts', async () => {
    const base = await serve(emptyBoard);
    const hunts = Array.from({ length: ENTRIES_PER_READ / 1000 + 10 }, (_, i) => `h${i}`);
    const connected = hunts.map((h) => connect(`${base}/hunts/${h}/leaderboard/stream?limit=1000`));
    await Promise.all(connected.map((s) => s.next(0)));
    statements = [];
    streams?.changed(hunts);
    await Promise.all(connected.map((s) => s.next(1)));
    expect(statements.map((s) => s.length)).toEqual([ENTRIES_PER_READ / 1000, 10]);
  });

  it('keeps a hunt marked when its read fails, and delivers on the next window', async () => {
    let failing = false;
    const base = await serve(async (huntId) => {
      if (failing) throw new Error('pool busy');
      return { huntId, asOf: null, entries: [{ ok: true }] };
    });
    const stream = connect(`${base}/hunts/h/leaderboard/stream`);
    await stream.next(0);
    statements = [];
    failing = true;
    streams?.changed(['h']);
    await waitFor('a failed read', () => statements.length >= 1);
    failing = false;
    await stream.next(1);
    expect(statements.length).toBeGreaterThanOrEqual(2);
  });

  it('reads the hunts of a failed read alone, so one whose read always fails holds no other back', async () => {
    let broken = false;
    const base = await serve(async (huntId) => {
      if (broken && huntId === 'bad') throw new Error('canceling statement due to statement timeout');
      return { huntId, asOf: null, entries: [{ read: statements.length }] };
    });
    const [a, bad, c] = ['a', 'bad', 'c'].map((h) => connect(`${base}/hunts/${h}/leaderboard/stream`));
    await Promise.all([a?.next(0), bad?.next(0), c?.next(0)]);
    statements = [];
    broken = true;
    streams?.changed(['a', 'bad', 'c']);
    // Before, the three were read together window after window, and none got its change.
    await Promise.all([a?.next(1), c?.next(1)]);
    expect(statements[0]).toHaveLength(3);
    expect(statements.slice(1).every((s) => s.length === 1)).toBe(true);
    await waitFor('the failing hunt to be counted', () => streams?.huntsFailing === 1);
    expect(streams?.failedReads).toBeGreaterThanOrEqual(2);
    expect(bad?.events).toHaveLength(1);

    // Tried again, less and less often, alone, until it works.
    const triesBefore = statements.filter((s) => s[0]?.huntId === 'bad').length;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const tries = statements.filter((s) => s[0]?.huntId === 'bad').length - triesBefore;
    expect(tries).toBeGreaterThanOrEqual(1);
    expect(tries).toBeLessThan(6); // every 100 ms it would be 10
    broken = false;
    await bad?.next(1);
    expect(streams?.huntsFailing).toBe(0);
  });

  it('counts no hunt as failing whose last stream closed while its failing read ran', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let broken = false;
    const base = await serve(async (huntId) => {
      if (broken) {
        await gate;
        throw new Error('canceling statement due to statement timeout');
      }
      return { huntId, asOf: null, entries: [] };
    });
    const gone = connect(`${base}/hunts/gone/leaderboard/stream`);
    await gone.next(0);
    broken = true;
    streams?.changed(['gone']);
    await waitFor('the read to start', () => statements.length === 2);
    gone.close();
    await waitFor('the stream to close', () => streams?.streams === 0);
    release();
    await waitFor('the read to fail', () => streams?.failedReads === 1);
    expect(streams?.huntsFailing).toBe(0);
  });

  it('blames no hunt for an outage: their reads stay grouped, windows space out, and streams catch up as soon as the database is back', async () => {
    let down = false;
    const base = await serve(async (huntId) => {
      if (down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      return { huntId, asOf: null, entries: [{ read: statements.length }] };
    });
    const hunts = ['a', 'b', 'c'].map((h) => connect(`${base}/hunts/${h}/leaderboard/stream`));
    await Promise.all(hunts.map((stream) => stream.next(0)));
    statements = [];
    down = true;
    streams?.changed(['a', 'b', 'c']);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    // Before, each hunt was then read alone, tried less and less often: after 2.5 s down,
    // next in about 3 s, whenever the database came back.
    expect(statements.length).toBeGreaterThanOrEqual(3);
    expect(statements.length).toBeLessThan(12); // a window every 100 ms would be 25
    expect(statements.every((s) => s.length === 3)).toBe(true);
    expect(streams?.huntsFailing).toBe(0);
    const triedBefore = statements.length;
    down = false;
    await Promise.all(hunts.map((stream) => stream.next(1)));
    // One read, the next window's: none waited for a hunt's own backoff.
    expect(statements.length).toBe(triedBefore + 1);
  });

  it('lets streams that connect together share their first read, unless a change came in since it started', async () => {
    let reads = 0;
    let release: () => void = () => undefined;
    let gate = new Promise<void>((resolve) => (release = resolve));
    const base = await serve(async (huntId) => {
      // Numbered when it starts: a stream handed the shared first read gets 1, whenever it ends.
      const read = ++reads;
      await gate;
      return { huntId, asOf: null, entries: [{ read }] };
    });
    const herd = Array.from({ length: 50 }, () => connect(`${base}/hunts/h/leaderboard/stream`));
    await waitFor('every stream to be open', () => streams?.streams === 50);
    expect(reads).toBe(1);
    // A change while the shared read runs: a stream connecting now must not get the older read.
    streams?.changed(['h']);
    const late = connect(`${base}/hunts/h/leaderboard/stream`);
    await waitFor('the late stream to be open', () => streams?.streams === 51);
    // The shared first read, the change's read for the herd, and the late stream's own.
    await waitFor('three reads', () => reads === 3);
    release();
    gate = Promise.resolve();
    await Promise.all([...herd, late].map((s) => s.next(0)));
    const lateFirst = JSON.parse((late.events[0] as { data: string }).data) as { entries: { read: number }[] };
    expect(lateFirst.entries[0]?.read).toBeGreaterThanOrEqual(2);
  });

  it('coalesces a burst of changes into a few reads', async () => {
    let reads = 0;
    const base = await serve(async (huntId) => {
      reads++;
      return { huntId, asOf: null, entries: [] };
    });
    const stream = connect(`${base}/hunts/h/leaderboard/stream`);
    await stream.next(0);
    reads = 0;
    for (let i = 0; i < 500; i++) streams?.changed(['h']);
    await stream.next(1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // One read for the burst, perhaps one more for changes that came while it ran.
    expect(reads).toBeGreaterThanOrEqual(1);
    expect(reads).toBeLessThanOrEqual(2);
  });

  it('rejects bad stream parameters with a 400 before opening a stream', async () => {
    const base = await serve(emptyBoard);
    for (const target of ['/hunts/h/leaderboard/stream?limit=0', '/hunts/h/leaderboard/stream?limit=abc', '/hunts/h/leaderboard/stream?since=1', '/hunts/bad%20id/leaderboard/stream']) {
      const res = await fetch(base + target);
      expect(res.status, target).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
    }
    expect(streams?.streams).toBe(0);
  });

  it('serves the live page with a policy that allows only its own style, script and stream', async () => {
    const base = await serve(emptyBoard);
    const res = await fetch(`${base}/hunts/page-1`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const policy = res.headers.get('content-security-policy') ?? '';
    expect(policy).toMatch(/default-src 'none'/);
    expect(policy).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+';/);
    expect(policy).toMatch(/connect-src 'self'/);
    const html = await res.text();
    expect(html).toContain('<title>Leaderboard: page-1</title>');
    expect((await fetch(`${base}/hunts/%3Cscript%3E`)).status).toBe(400);
  });
});

/** A response as LeaderboardStreams uses it, whose socket is full when `full` is set. */
class FakeResponse extends EventEmitter {
  full = false;
  writableEnded = false;
  destroyed = false;
  readonly written: string[] = [];
  get writableNeedDrain(): boolean {
    return this.full;
  }
  /** What a full socket holds unsent: the last write's bytes (a real response's count is never undefined). */
  get writableLength(): number {
    return this.full ? Buffer.byteLength(this.written.at(-1) ?? '') : 0;
  }
  writeHead(): this {
    return this;
  }
  write(chunk: string): boolean {
    this.written.push(chunk);
    return !this.full;
  }
  end(): void {
    this.writableEnded = true;
    this.emit('close');
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

function fakeStream(target: LeaderboardStreams, huntId: string, limit: number): FakeResponse {
  const res = new FakeResponse();
  target.subscribe(huntId, limit, new EventEmitter() as http.IncomingMessage, res as unknown as http.ServerResponse);
  return res;
}

/** A client that takes the stream's first lines and then stops reading: its first message stays in the process, unsent. */
class StalledResponse extends FakeResponse {
  unsentBytes = 0;
  override get writableLength(): number {
    return this.unsentBytes;
  }
  override write(chunk: string): boolean {
    super.write(chunk);
    if (chunk.startsWith('event: leaderboard')) {
      this.unsentBytes += Buffer.byteLength(chunk);
      this.full = true;
    }
    return !this.full;
  }
}

describe('live leaderboard streams whose clients stop reading', () => {
  it('hold no more unsent messages in the process than their budget, and send the rest as sockets close', async () => {
    // About 50 KB a message: 100 streams that stop reading held 5 MB, and 768 of 1,000-entry
    // pages hundreds of MB, however the budget of plain answers was kept.
    const page = async (huntId: string): Promise<LeaderboardBody> => ({ huntId, asOf: null, entries: Array.from({ length: 100 }, (_, i) => ({ rank: i + 1, playerId: `p${i}`, displayName: 'x'.repeat(480) })) });
    const read = async (requests: readonly LeaderboardRequest[]) => new Map(await Promise.all(requests.map(async (r) => [r.huntId, await page(r.huntId)] as const)));
    const budget = 1024 * 1024;
    const target = new LeaderboardStreams({ read, logger, heartbeatMs: 60_000, minIntervalMs: 10, unsentBudgetBytes: budget });
    try {
      const responses = Array.from({ length: 100 }, () => {
        const res = new StalledResponse();
        target.subscribe('h', 100, new EventEmitter() as http.IncomingMessage, res as unknown as http.ServerResponse);
        return res;
      });
      const sent = () => responses.filter((r) => r.unsentBytes > 0);
      await waitFor('the budget filled', () => sent().length > 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const messageBytes = sent()[0]!.unsentBytes;
      expect(messageBytes).toBeGreaterThan(45_000);
      const unsent = responses.reduce((sum, r) => sum + r.unsentBytes, 0);
      expect(unsent).toBeLessThan(budget + messageBytes);
      expect(sent().length).toBeLessThan(30);
      // Streams cut (two heartbeats without reading, or their clients gone) make room for the others'.
      const first = sent();
      for (const res of first) res.destroy();
      await waitFor('the streams held for the budget sent', () => sent().length > first.length);
      expect(responses.filter((r) => !r.destroyed).reduce((sum, r) => sum + r.unsentBytes, 0)).toBeLessThan(budget + messageBytes);
    } finally {
      target.close();
    }
  });

  it('give the budget back when a socket drains, so streams held for it are sent', async () => {
    const page = async (huntId: string): Promise<LeaderboardBody> => ({ huntId, asOf: null, entries: Array.from({ length: 100 }, (_, i) => ({ rank: i + 1, playerId: `p${i}`, displayName: 'x'.repeat(480) })) });
    const read = async (requests: readonly LeaderboardRequest[]) => new Map(await Promise.all(requests.map(async (r) => [r.huntId, await page(r.huntId)] as const)));
    const target = new LeaderboardStreams({ read, logger, heartbeatMs: 60_000, minIntervalMs: 10, unsentBudgetBytes: 1024 * 1024 });
    try {
      const responses = Array.from({ length: 60 }, () => {
        const res = new StalledResponse();
        target.subscribe('h', 100, new EventEmitter() as http.IncomingMessage, res as unknown as http.ServerResponse);
        return res;
      });
      const sent = () => responses.filter((r) => r.written.some((w) => w.startsWith('event: leaderboard'))).length;
      await waitFor('the budget filled', () => sent() > 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const before = sent();
      expect(before).toBeLessThan(60);
      // Slow clients that read on: each socket drains (its bytes taken), and the budget goes
      // to the streams held for it. Without the release the total only grew, and every
      // stream of the process was left with keep-alives.
      for (let round = 0; round < 60 && sent() < 60; round++) {
        for (const res of responses.filter((r) => r.full)) {
          res.unsentBytes = 0;
          res.full = false;
          res.emit('drain');
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(sent()).toBe(60);
    } finally {
      target.close();
    }
  });
});

describe('live leaderboard streams, many at once', () => {
  const board = async (huntId: string): Promise<LeaderboardBody> => ({ huntId, asOf: '2026-12-03T00:00:00.000Z', entries: Array.from({ length: 50 }, (_, i) => ({ rank: i + 1, playerId: `p${i}` })) });
  const read = async (requests: readonly LeaderboardRequest[]) => new Map(await Promise.all(requests.map(async (r) => [r.huntId, await board(r.huntId)] as const)));

  it('serialize a hunt page once per limit asked for on connect, and each entry once per window, whatever the number of streams', async () => {
    const target = new LeaderboardStreams({ read, logger, heartbeatMs: 60_000, minIntervalMs: 10 });
    try {
      const stringify = vi.spyOn(JSON, 'stringify');
      const responses = [...Array.from({ length: 100 }, () => fakeStream(target, 'h', 10)), ...Array.from({ length: 100 }, () => fakeStream(target, 'h', 20))];
      await waitFor('every first message', () => responses.every((r) => r.written.some((w) => w.startsWith('event: leaderboard'))));
      expect(stringify).toHaveBeenCalledTimes(2);
      stringify.mockClear();
      await new Promise((resolve) => setTimeout(resolve, 20)); // past the 10 ms between messages
      target.changed(['h']);
      await waitFor('every second message', () => responses.every((r) => r.written.filter((w) => w.startsWith('event: leaderboard')).length === 2));
      expect(stringify).toHaveBeenCalledTimes(20 + 1); // the 20 entries the largest limit takes, and the page around them
      stringify.mockRestore();
    } finally {
      target.close();
    }
  });

  it('serialize each entry once per window however many distinct limits the streams ask for', async () => {
    // Limits are the clients' choice: serialized whole per limit, 50 streams of limits 1-50
    // cost 1,275 entries a window; 1,000 of limits 1-1000 would cost 500,500.
    let serialized = 0; // entries serialized: JSON.stringify calls an entry's toJSON each time
    const countedBoard = async (huntId: string): Promise<LeaderboardBody> => ({
      huntId,
      asOf: null,
      entries: Array.from({ length: 50 }, (_, i) => ({ toJSON: () => (serialized++, { rank: i + 1, playerId: `p${i}` }) })),
    });
    const countedRead = async (requests: readonly LeaderboardRequest[]) => new Map(await Promise.all(requests.map(async (r) => [r.huntId, await countedBoard(r.huntId)] as const)));
    const target = new LeaderboardStreams({ read: countedRead, logger, heartbeatMs: 60_000, minIntervalMs: 10 });
    try {
      const responses = Array.from({ length: 50 }, (_, i) => fakeStream(target, 'h', i + 1));
      await waitFor('every first message', () => responses.every((r) => r.written.some((w) => w.startsWith('event: leaderboard'))));
      serialized = 0;
      await new Promise((resolve) => setTimeout(resolve, 20));
      target.changed(['h']);
      await waitFor('every second message', () => responses.every((r) => r.written.filter((w) => w.startsWith('event: leaderboard')).length === 2));
      expect(serialized).toBe(50);
      for (const [i, res] of responses.entries()) expect(JSON.parse(res.written.at(-1)!.split('data: ')[1]!).entries).toHaveLength(i + 1);
    } finally {
      target.close();
    }
  });

  it('space their windows out when delivering takes long, so streams take at most a fifth of the event loop', async () => {
    const readsAt: number[] = [];
    const target = new LeaderboardStreams({ read: async (requests) => (readsAt.push(performance.now()), read(requests)), logger, heartbeatMs: 60_000, minIntervalMs: 10 });
    const changes = setInterval(() => target.changed(['h']), 5);
    try {
      const slow = fakeStream(target, 'h', 10);
      const write = slow.write.bind(slow);
      slow.write = (chunk: string) => {
        const until = performance.now() + 40; // a delivery that keeps the event loop 40 ms
        while (performance.now() < until);
        return write(chunk);
      };
      await waitFor('a few windows', () => readsAt.length >= 5, { timeoutMs: 5_000 });
      const gaps = readsAt.slice(2).map((at, i) => at - (readsAt[i + 1] as number));
      // Each window's delivery took 40 ms: the next starts 160 ms after it ends, not 10.
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(40 + 150);
    } finally {
      clearInterval(changes);
      target.close();
    }
  });

  it('read a hunt with 130,000 streams for the largest limit among them', async () => {
    const asked: LeaderboardRequest[] = [];
    const target = new LeaderboardStreams({ read: async (requests) => (asked.push(...requests), read(requests)), logger, heartbeatMs: 60_000, minIntervalMs: 10 });
    try {
      // Spread into Math.max, this many limits overflowed the stack: the window threw, and
      // its unhandled rejection ended the process that runs the hot path.
      const responses = Array.from({ length: 130_000 }, (_, i) => fakeStream(target, 'h', i === 77_777 ? 25 : 10));
      await waitFor('every first message', () => responses.every((r) => r.written.some((w) => w.startsWith('event: leaderboard'))), { timeoutMs: 20_000 });
      asked.length = 0;
      target.changed(['h']);
      await waitFor('the window to read the hunt', () => asked.length > 0, { timeoutMs: 5_000 });
      expect(asked).toEqual([{ huntId: 'h', limit: 25 }]);
    } finally {
      target.close();
    }
  });

  it('keep going when a window throws: its hunts are read again next window, the fault logged, nothing left unhandled', async () => {
    // A fault of the window's own code (here a response whose write throws once), not a failed
    // read: before the catch, its rejection went unhandled and ended the process.
    const errors: string[] = [];
    const spyLogger = Object.assign(Object.create(logger) as typeof logger, { error: (_obj: unknown, msg: string) => void errors.push(msg) });
    const target = new LeaderboardStreams({ read, logger: spyLogger, heartbeatMs: 60_000, minIntervalMs: 10 });
    try {
      const res = fakeStream(target, 'h', 10);
      await waitFor('the first message', () => res.written.some((w) => w.startsWith('event: leaderboard')));
      const write = res.write.bind(res);
      let thrown = 0;
      res.write = (chunk: string) => {
        if (thrown++ === 0) throw new Error('a fault in the window');
        return write(chunk);
      };
      await new Promise((resolve) => setTimeout(resolve, 20)); // past the 10 ms between messages
      target.changed(['h']);
      await waitFor('the next window to deliver', () => res.written.filter((w) => w.startsWith('event: leaderboard')).length === 2);
      expect(thrown).toBeGreaterThanOrEqual(2);
      expect(target.failedReads).toBe(1);
      expect(errors).toEqual(['live leaderboard: a read window failed; trying its hunts again in the next window']);
    } finally {
      target.close();
    }
  });

  it('count no failed first read for a stream whose client left before it, nor after shutdown', async () => {
    let fail!: (err: Error) => void;
    const target = new LeaderboardStreams({ read: () => new Promise((_, reject) => (fail = reject)), logger, heartbeatMs: 60_000, minIntervalMs: 10 });
    const req = new EventEmitter() as http.IncomingMessage;
    const res = new FakeResponse();
    target.subscribe('h', 10, req, res as unknown as http.ServerResponse);
    req.emit('close'); // the client left while its first read waited
    fail(new Error('timeout exceeded when trying to connect'));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(target.firstReadFailures).toBe(0);
    expect(target.streams).toBe(0);
    target.close();

    // A shutdown ends every first read that waits: those are not failures either.
    const stopping = new LeaderboardStreams({ read: () => new Promise((_, reject) => (fail = reject)), logger, heartbeatMs: 60_000, minIntervalMs: 10 });
    stopping.subscribe('h', 10, new EventEmitter() as http.IncomingMessage, new FakeResponse() as unknown as http.ServerResponse);
    stopping.close();
    fail(new Error('Cannot use a pool after calling end on the pool'));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(stopping.firstReadFailures).toBe(0);
  });

  it('keep a stream whose client reads slower than its messages come, sending it fewer', async () => {
    // Each drain comes after the 100 ms between a stream's messages, so it is refilled at once
    // with the newest message and the socket is full at every heartbeat; the client still
    // reads, and was cut as one that had stopped.
    const target = new LeaderboardStreams({ read, logger, heartbeatMs: 200 });
    const changes = setInterval(() => target.changed(['h']), 20);
    try {
      const slow = fakeStream(target, 'h', 10);
      await waitFor('the first message', () => slow.written.length > 1);
      slow.write = (chunk: string) => {
        slow.written.push(chunk);
        slow.full = true; // every message fills the socket
        return false;
      };
      const reads = setInterval(() => {
        slow.full = false;
        slow.emit('drain');
      }, 130);
      try {
        const before = slow.written.length;
        await new Promise((resolve) => setTimeout(resolve, 2_000)); // ten heartbeats
        expect(slow.destroyed).toBe(false);
        expect(slow.written.length).toBeGreaterThan(before + 3);
        expect(target.slowStreamsDropped).toBe(0);
      } finally {
        clearInterval(reads);
      }
    } finally {
      clearInterval(changes);
      target.close();
    }
  });

  it('close a stream whose client stopped reading for two heartbeats, and count it', async () => {
    const target = new LeaderboardStreams({ read, logger, heartbeatMs: 50 });
    try {
      const reading = fakeStream(target, 'h', 10);
      const stalled = fakeStream(target, 'h', 10);
      await waitFor('the first messages', () => stalled.written.length > 1 && reading.written.length > 1);
      stalled.full = true;
      await waitFor('the stalled stream to be closed', () => stalled.destroyed, { timeoutMs: 2_000 });
      expect(reading.destroyed).toBe(false);
      expect(target.slowStreamsDropped).toBe(1);
      expect(target.streams).toBe(1);
    } finally {
      target.close();
    }
  });
});

describe('pageMessages', () => {
  it('makes each limit\'s message byte for byte as the page cut to the limit, serialized whole', () => {
    const pages: LeaderboardBody[] = [
      { huntId: 'h', asOf: '2026-12-06T17:00:00.000Z', entries: Array.from({ length: 30 }, (_, i) => ({ rank: i + 1, playerId: `p"${i}\u2028`, displayName: i % 3 ? null : `n\\${i}`, score: -i })) },
      { huntId: 'empty', asOf: null, entries: [] },
    ];
    for (const page of pages) {
      const limits = [7, 1, 30, 1000, 7];
      const messages = pageMessages(page, limits);
      expect([...messages.keys()]).toEqual([1, 7, 30, 1000]);
      for (const limit of limits) {
        expect(messages.get(limit)).toBe(`event: leaderboard\ndata: ${JSON.stringify({ ...page, entries: page.entries.slice(0, limit) })}\n\n`);
      }
    }
  });
});

describe('live leaderboard streams requested pipelined on one connection', () => {
  it('open no more than API_MAX_STREAMS, and none queued behind another response', async () => {
    const base = new URL(await serve(emptyBoard, 10));
    const socket = net.connect(Number(base.port), base.hostname);
    await new Promise((resolve) => socket.once('connect', resolve));
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.write(Array.from({ length: 50 }, (_, i) => `GET /hunts/h${i}/leaderboard/stream HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
    // The first is served; the others wait behind it, opening nothing.
    await waitFor('the first stream open, its first message sent', () => streams?.streams === 1 && received.includes('event: leaderboard'));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(streams?.streams).toBe(1);
    socket.destroy();
    await waitFor('the stream closed', () => streams?.streams === 0);
  });
});

describe('live leaderboard streams whose first read fails', () => {
  it('keep a stream a window has fed, and never write to one they ended, however slowly its client reads', async () => {
    // The first read waits on a busy pool and fails; meanwhile a window read delivers a page
    // far bigger than the socket's buffers (20 MB), which a client that stops reading leaves
    // in the process: an ended response's 'close' would wait for it.
    let reads = 0;
    const bigBoard: LeaderboardBody = {
      huntId: 'h',
      asOf: null,
      entries: Array.from({ length: 1000 }, (_, i) => ({ rank: i + 1, playerId: `p${i}`, displayName: 'x'.repeat(20_000) })),
    };
    // The first read fails only once the window's read has answered (a fixed 300 ms let a
    // paused process fail it first).
    let windowAnswered = () => undefined as void;
    const windowRead = new Promise<void>((resolve) => (windowAnswered = resolve));
    const read = async () => {
      if (++reads === 1) {
        await windowRead;
        await new Promise((resolve) => setTimeout(resolve, 50));
        throw new Error('timeout exceeded when trying to connect');
      }
      windowAnswered();
      return new Map([['h', bigBoard]]);
    };
    const target = new LeaderboardStreams({ read, logger, heartbeatMs: 200 });
    streams = target;
    server = http.createServer((req, res) => {
      target.subscribe('h', 1000, req, res);
      setTimeout(() => target.changed(['h']), 50);
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    socket.write('GET /hunts/h/leaderboard/stream HTTP/1.1\r\nHost: x\r\n\r\n');
    socket.pause();
    try {
      // Heartbeats go on over the failed first read (an error written after the end would
      // be uncaught here); the stream is live until the slow-client rule drops it.
      await waitFor('the stream to open', () => target.streams === 1);
      await waitFor('the stalled stream to be dropped', () => target.streams === 0, { timeoutMs: 5_000 });
      expect(reads).toBeGreaterThanOrEqual(2);
      expect(target.slowStreamsDropped).toBe(1);
    } finally {
      socket.destroy();
    }
  });
});
