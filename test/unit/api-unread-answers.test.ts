/**
 * The read API against a client that pipelines requests and never reads the answers, on a
 * real HTTP server (the leaderboard answer given by the test, no Postgres): answers are
 * sent in order, so each one waits in the process for a client that may never take it. A
 * connection holding more than its budget of unread answers is closed, and counted, so a few
 * dozen such clients cannot take the process's memory (and the hot path with it).
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type pg from 'pg';
import { Gauge, Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LeaderboardStreams } from '../../src/api/leaderboard-streams';
import { createOpsServer } from '../../src/api/ops-server';
import type { CachedReply, ReplyCache } from '../../src/api/reply-cache';
import { createApiServer } from '../../src/api/server';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';
import { waitFor } from '../helpers/wait';

const logger = createLogger({ logLevel: 'silent' });
let server: http.Server | undefined;
let registry: Registry;

/** A leaderboard answer of about 100 KB, whatever the hunt. */
const bigBoard: CachedReply = { status: 200, body: JSON.stringify({ huntId: 'h', asOf: null, entries: Array.from({ length: 1000 }, (_, i) => ({ rank: i + 1, playerId: `p${i}`, displayName: 'x'.repeat(100) })) }) };

async function serve(env: Record<string, string> = {}, reply: CachedReply = bigBoard, readyAfterMs = 0): Promise<number> {
  registry = new Registry();
  const streams = new LeaderboardStreams({ read: async () => new Map(), logger, heartbeatMs: 60_000 });
  const deps = {
    pool: {} as pg.Pool,
    leaderboardCache: { get: async () => reply } as unknown as ReplyCache,
    streams,
    maxStreams: 10,
    registry,
    logger,
    readiness: async () => {
      await new Promise((resolve) => setTimeout(resolve, readyAfterMs));
      return { ready: true, checks: {} };
    },
  };
  server = createApiServer(deps, loadConfig(env).api);
  server.once('close', () => streams.close());
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

afterEach(async () => {
  await new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
  server = undefined;
});

const cutTotal = async () => (await registry.getSingleMetric('hunt_api_connections_cut_unread_total')?.get())?.values[0]?.value ?? 0;

/** Responses of `code`, over every route. */
const responses = async (code: string) =>
  ((await registry.getSingleMetric('hunt_api_responses_total')?.get())?.values ?? []).filter((v) => v.labels.code === code).reduce((sum, v) => sum + v.value, 0);

describe('the read API, to a client that pipelines requests and reads nothing', () => {
  it('answers past the budget of unread answers with a short 503', async () => {
    const port = await serve({ API_REQUEST_TIMEOUT_MS: '1000' });
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.pause(); // reads nothing
    try {
      // 500 requests (50 MB of answers) in one write: a few answers held, the rest refused.
      socket.write(Array.from({ length: 500 }, (_, i) => `GET /hunts/h/leaderboard?limit=${(i % 999) + 2} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
      await waitFor('the requests to be answered', async () => (await responses('200')) + (await responses('503')) === 500, { timeoutMs: 10_000 });
      // At most the budget (512 KB, ~100 KB each) in answers; the rest short refusals.
      expect(await responses('200')).toBeGreaterThanOrEqual(1); // one answer always goes
      expect(await responses('200')).toBeLessThanOrEqual(6);
    } finally {
      socket.destroy();
    }
  });

  it('closes a connection whose one answer is not taken within API_REQUEST_TIMEOUT_MS', async () => {
    // 5 MB: far more than the socket's buffers take from a client that reads nothing.
    const port = await serve({ API_REQUEST_TIMEOUT_MS: '1000' }, { status: 200, body: JSON.stringify({ pad: 'x'.repeat(5_000_000) }) });
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.pause();
    try {
      socket.write('GET /hunts/h/leaderboard HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor('the server to close the connection', async () => (await cutTotal()) === 1, { timeoutMs: 5_000 });
    } finally {
      socket.destroy();
    }
  });

  it('counts the deadline from the answer, not the request: a slow answer is sent, not cut', async () => {
    const port = await serve({ API_REQUEST_TIMEOUT_MS: '1000' }, bigBoard, 1500);
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(response.status).toBe(200);
    expect(await cutTotal()).toBe(0);
  });

  it('answers a client that pipelines large requests and reads them: those past the budget with a 503 to ask again, the connection kept', async () => {
    const port = await serve();
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const count = (status: string) => received.split(`HTTP/1.1 ${status}`).length - 1;
    try {
      // 150 KB each, made at once before any is read: three fit the budget.
      socket.write(Array.from({ length: 5 }, () => 'GET /hunts/h/leaderboard?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n').join(''));
      await waitFor('five answers', () => count('200 OK') + count('503 Service Unavailable') === 5 && received.endsWith('}'), { timeoutMs: 10_000 });
      expect(count('200 OK')).toBe(3);
      // The connection stays: the next request, once the answers are read, is answered in full.
      received = '';
      socket.write('GET /hunts/h/leaderboard?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor('the next answer', () => count('200 OK') === 1 && received.endsWith('}'), { timeoutMs: 10_000 });
      expect(await cutTotal()).toBe(0);
    } finally {
      socket.destroy();
    }
  });
});

describe('the ops port, to a client that pipelines requests and reads nothing', () => {
  /** An ops server whose /metrics is about `metricsBytes`. */
  async function serveOps(env: Record<string, string>, metricsBytes: number): Promise<number> {
    registry = new Registry();
    new Gauge({ name: 'hunt_test_padding', help: 'x'.repeat(metricsBytes), registers: [registry] });
    server = createOpsServer({ registry, readiness: async () => ({ ready: true, checks: {} }) }, loadConfig(env).api);
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }
  const opsCutTotal = async () => (await registry.getSingleMetric('hunt_api_ops_connections_cut_unread_total')?.get())?.values[0]?.value ?? 0;

  it('closes the connection once an answer is not taken within API_REQUEST_TIMEOUT_MS, and still answers a probe', async () => {
    // 5 MB: far more than the socket's buffers take from a client that reads nothing.
    const port = await serveOps({ API_REQUEST_TIMEOUT_MS: '1000' }, 5_000_000);
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.pause(); // reads nothing
    try {
      // 20 scrapes (100 MB of answers) in one write.
      socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(20));
      await waitFor('the server to close the connection', async () => (await opsCutTotal()) === 1, { timeoutMs: 5_000 });
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      socket.destroy();
    }
  });

  it('answers pipelined scrapes past the budget of unread answers with a short 503, built only when sent, the connection kept', async () => {
    const port = await serveOps({}, 100_000);
    const built = vi.spyOn(registry, 'metrics');
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const count = (status: string) => received.split(`HTTP/1.1 ${status}`).length - 1;
    try {
      // About 100 KB each, sent before any is read: five fit the 512 KB budget. Answered in turn,
      // a scrape the budget would refuse is not built (made at once, all 10 were).
      socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(10));
      await waitFor('ten answers', () => count('200 OK') + count('503 Service Unavailable') === 10, { timeoutMs: 10_000 });
      expect(count('200 OK')).toBeGreaterThanOrEqual(1);
      expect(count('200 OK')).toBeLessThanOrEqual(6);
      expect(built.mock.calls.length).toBeLessThanOrEqual(count('200 OK') + 1);
      expect(await opsCutTotal()).toBe(0);
    } finally {
      socket.destroy();
    }
  });

  it('answers nothing more on a connection its client closed', async () => {
    const port = await serveOps({}, 10);
    let built = 0;
    vi.spyOn(registry, 'metrics').mockImplementation(async () => {
      built++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      return 'hunt_test 1\n';
    });
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    // 50 scrapes of 20 ms each, small enough for the budget; the client leaves after about two.
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(50));
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // what 50 turns would take, and more
    expect(built).toBeGreaterThanOrEqual(1);
    expect(built).toBeLessThanOrEqual(5);
  });
});

describe('the answers of all connections of a server together', () => {
  it('are held within the server budget: an answer past it gets the server refusal, and the connection is not marked refused', async () => {
    const { holdAnswer, refusedBeforeMade, serverAnswers, SERVER_UNREAD_REFUSAL } = await import('../../src/api/answer-budget');
    const budget = serverAnswers(250_000);
    const request = () => ({ socket: new net.Socket() }) as unknown as http.IncomingMessage;
    const response = () => new EventEmitter() as unknown as http.ServerResponse;
    const cut = vi.fn();
    const [a, b] = [request(), request()];
    const [resA, resB] = [response(), response()];
    expect(holdAnswer(a, resA, 200_000, 60_000, cut, budget)).toBeUndefined();
    // Its connection's first answer, yet past what the server's connections hold together.
    expect(holdAnswer(b, resB, 100_000, 60_000, cut, budget)).toBe(SERVER_UNREAD_REFUSAL);
    expect(budget.held).toBe(200_000);
    resB.emit('close'); // the refusal went out
    // The connection is not marked; with the server's budget this full, its next answer need not be made.
    expect(refusedBeforeMade(b, response(), 60_000, cut, serverAnswers(250_000))).toBeUndefined();
    const full = serverAnswers(200_000);
    full.held = 200_000;
    const refusedEarly = response();
    expect(refusedBeforeMade(b, refusedEarly, 60_000, cut, full)).toBe(SERVER_UNREAD_REFUSAL);
    refusedEarly.emit('close');
    resA.emit('close'); // taken
    const again = response();
    expect(holdAnswer(b, again, 100_000, 60_000, cut, budget)).toBeUndefined();
    again.emit('close');
    expect(budget.held).toBe(0);
    expect(cut).not.toHaveBeenCalled();
  });

  it('count nothing for an answer made after its client left (its connection\'s close has come and gone)', async () => {
    const { holdAnswer, serverAnswers } = await import('../../src/api/answer-budget');
    const budget = serverAnswers(1_000_000);
    const socket = new net.Socket();
    socket.destroy(); // the client gave up while the read waited on a busy pool
    const res = new EventEmitter() as unknown as http.ServerResponse;
    expect(holdAnswer({ socket } as unknown as http.IncomingMessage, res, 200_000, 60_000, vi.fn(), budget)).toBeUndefined();
    expect(budget.held).toBe(0);
    res.emit('close');
    expect(budget.held).toBe(0);
  });

  it('take back what a connection held when it closes, though its queued answers never emit close', async () => {
    const { holdAnswer, serverAnswers } = await import('../../src/api/answer-budget');
    const budget = serverAnswers(1_000_000);
    const socket = new net.Socket();
    const req = { socket } as unknown as http.IncomingMessage;
    const queued = [new EventEmitter(), new EventEmitter()] as unknown as http.ServerResponse[];
    for (const res of queued) expect(holdAnswer(req, res, 200_000, 60_000, vi.fn(), budget)).toBeUndefined();
    expect(budget.held).toBe(400_000);
    socket.emit('close'); // cut: Node 20 emits nothing on the answers queued behind the first
    expect(budget.held).toBe(0);
    queued[0]?.emit('close'); // one that does close afterwards takes nothing back twice
    expect(budget.held).toBe(0);
    for (const res of queued) res.emit('close');
  });
});
