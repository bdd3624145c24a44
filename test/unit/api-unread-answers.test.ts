/**
 * The read API against a client that pipelines requests and never reads the answers, on a
 * real HTTP server (the leaderboard answer given by the test, no Postgres): answers are
 * sent in order, so each one waits in the process for a client that may never take it. A
 * connection holding more than its budget of unread answers is closed, and counted, so a few
 * dozen such clients cannot take the process's memory (and the hot path with it).
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { LeaderboardStreams } from '../../src/api/leaderboard-streams';
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

async function serve(env: Record<string, string> = {}, reply: CachedReply = bigBoard): Promise<number> {
  registry = new Registry();
  const streams = new LeaderboardStreams({ read: async () => new Map(), logger, heartbeatMs: 60_000 });
  const deps = {
    pool: {} as pg.Pool,
    leaderboardCache: { get: async () => reply } as unknown as ReplyCache,
    streams,
    maxStreams: 10,
    registry,
    logger,
    readiness: async () => ({ ready: true, checks: {} }),
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

describe('the read API, to a client that pipelines requests and reads nothing', () => {
  it('closes the connection once its unread answers pass the budget, and counts it', async () => {
    const port = await serve();
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.pause(); // reads nothing
    try {
      // 500 requests (50 MB of answers) in one write.
      socket.write(Array.from({ length: 500 }, (_, i) => `GET /hunts/h/leaderboard?limit=${(i % 999) + 2} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
      await waitFor('the server to close the connection', async () => (await cutTotal()) === 1, { timeoutMs: 10_000 });
      await waitFor('no connection left', () => new Promise<boolean>((resolve) => server?.getConnections((_, n) => resolve(n === 0))));
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

  it('answers a client that pipelines a few large requests (150 KB each) and reads them', async () => {
    const port = await serve();
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write(Array.from({ length: 3 }, () => 'GET /hunts/h/leaderboard?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n').join(''));
    await waitFor('three answers', () => received.split('HTTP/1.1 200 OK').length - 1 === 3 && received.endsWith('}'), { timeoutMs: 10_000 });
    socket.destroy();
    expect(await cutTotal()).toBe(0);
  });
});
