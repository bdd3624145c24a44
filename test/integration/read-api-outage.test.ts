/**
 * The read API while its Postgres cannot be reached (a restart, a failover, a network cut):
 * requests get 503 with retry-after, as for a busy pool, not 500 "internal error" at error
 * level per request in the process ingest runs in; and a connection that went silent on the
 * way (no error, no reset) fails its query instead of holding a pool slot for ever.
 */
import net from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReadApi, type ReadApi } from '../../src/api/read-api';
import { loadConfig } from '../../src/config';
import { useTestDatabase } from '../helpers/database-fixture';
import { freePort } from '../helpers/tcp-forward';
import pino from 'pino';

let api: ReadApi;
const registry = new Registry();
const logged: { level: number; msg: string }[] = [];

beforeAll(async () => {
  const config = loadConfig({ ...process.env, DATABASE_URL: `postgres://hunt@127.0.0.1:${await freePort()}/hunt`, API_PORT: String(await freePort()), API_BIND_ADDRESS: '127.0.0.1' });
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as { level: number; msg: string }) });
  api = await startReadApi(config, { registry, logger, readiness: async () => ({ ready: false, checks: {}, error: 'down' }) });
});

afterAll(async () => {
  await api?.close();
});

describe('the read API with Postgres unreachable (a port nothing listens on)', () => {
  it('answers 503 with retry-after, and logs no errors', async () => {
    for (const path of ['/hunts/h1/leaderboard', '/hunts/h1/players/p1', '/hunts/h1/leaderboard?limit=5']) {
      const response = await fetch(`${api.url}${path}`);
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(await response.json()).toEqual({ error: 'the read API cannot reach its database: try again shortly' });
    }
    expect(logged.filter((entry) => entry.level >= 50)).toEqual([]);
    expect(logged.filter((entry) => /Postgres is unreachable/.test(entry.msg))).toHaveLength(1);
  });

  it('reports that its live streams hear no changes', async () => {
    expect(await registry.getSingleMetricAsString('hunt_api_change_feed_listening')).toMatch(/^hunt_api_change_feed_listening 0$/m);
  });
});

describe('the read API when its connections go silent', () => {
  const db = useTestDatabase();

  it('answers 503 within the statement timeout and a second, and recovers on new connections', async () => {
    const target = new URL(db.url);
    const open = new Set<net.Socket>();
    const frozen = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      open.add(client);
      client.on('data', (chunk) => void (frozen.has(client) || upstream.write(chunk)));
      upstream.on('data', (chunk) => void (frozen.has(client) || client.write(chunk)));
      const close = () => { open.delete(client); client.destroy(); upstream.destroy(); };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxied = new URL(db.url);
    proxied.host = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    const config = loadConfig({ ...process.env, DATABASE_URL: proxied.toString(), API_PORT: String(await freePort()), API_STATEMENT_TIMEOUT_MS: '500', API_DB_POOL_SIZE: '1' });
    const reachable = new Registry();
    const silent = await startReadApi(config, { registry: reachable, logger: pino({ level: 'silent' }), readiness: async () => ({ ready: true, checks: {} }) });
    try {
      expect((await fetch(`${silent.url}/hunts/h1/leaderboard`)).status).toBe(404); // an unknown hunt: Postgres answered
      expect(await reachable.getSingleMetricAsString('hunt_api_change_feed_listening')).toMatch(/^hunt_api_change_feed_listening 1$/m);
      // The connections open now (the pool's one) forward nothing from here on.
      open.forEach((socket) => frozen.add(socket));
      const started = performance.now();
      const response = await fetch(`${silent.url}/hunts/h2/leaderboard`, { signal: AbortSignal.timeout(10_000) });
      expect(response.status).toBe(503);
      expect(performance.now() - started).toBeLessThan(5_000);
      await new Promise((resolve) => setTimeout(resolve, 1_100)); // past the reply cache
      expect((await fetch(`${silent.url}/hunts/h3/leaderboard`)).status).toBe(404);
    } finally {
      await silent.close();
      proxy.close();
    }
  }, 30_000);
});
