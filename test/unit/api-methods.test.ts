/**
 * Methods on the read API and the ops port, on real HTTP servers (no Postgres: the routes
 * asked here do not read): HEAD is GET without the body, so uptime checkers configured with
 * HEAD see a healthy process; any other method is a 405 that names the methods served in
 * `Allow`, as HTTP requires.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { LeaderboardStreams } from '../../src/api/leaderboard-streams';
import { createOpsServer } from '../../src/api/ops-server';
import { ReplyCache } from '../../src/api/reply-cache';
import { createApiServer } from '../../src/api/server';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';

const logger = createLogger({ logLevel: 'silent' });
const servers: http.Server[] = [];
let streams: LeaderboardStreams;

afterEach(async () => {
  streams?.close();
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function listen(server: http.Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const readiness = async () => ({ ready: true, checks: {} });

function apiServer(): Promise<string> {
  streams = new LeaderboardStreams({ read: async () => new Map(), logger, heartbeatMs: 60_000 });
  const deps = { pool: {} as pg.Pool, leaderboardCache: new ReplyCache(0), streams, maxStreams: 10, registry: new Registry(), logger, readiness };
  return listen(createApiServer(deps, loadConfig({}).api));
}

const opsServer = () => listen(createOpsServer({ registry: new Registry(), readiness }, loadConfig({}).api));

describe.each([
  ['the read API', apiServer],
  ['the ops port', opsServer],
])('%s', (_name, start) => {
  it('answers HEAD as GET, without the body', async () => {
    const base = await start();
    const get = await fetch(`${base}/healthz`);
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'));
    expect(head.headers.get('content-length')).toBe(String((await get.text()).length));
    expect(await head.text()).toBe('');
  });

  it.each(['POST', 'PUT', 'DELETE', 'OPTIONS'])('refuses %s with a 405 naming the methods served', async (method) => {
    const base = await start();
    const response = await fetch(`${base}/healthz`, { method });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, HEAD');
  });
});

describe('a HEAD of a live stream', () => {
  it("gets the stream's headers and no stream", async () => {
    const base = await apiServer();
    const head = await fetch(`${base}/hunts/h/leaderboard/stream`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(head.headers.get('content-length')).toBeNull();
    expect(streams.streams).toBe(0);
  });
});
