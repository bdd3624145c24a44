/**
 * `npx tsx bench/api-pipeline-flood.ts [connections] [bytes]`: how long a flood of pipelined
 * requests holds the event loop of the process that serves the read API (which is `hunt
 * ingest`'s, the hot path's too). The read API's server runs here on a stub store (no
 * Postgres: the requests are 404s, answered without a query); a child process opens
 * `connections` (default 1000) and writes `bytes` (default 128 KiB) of `GET /x` requests on
 * each, pipelined, and reads nothing. Reported: the longest a 100 ms timer waited past its
 * time, and the process's peak RSS. Results: docs/security.md ("The read API under abuse").
 */
import { fork } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { LeaderboardStreams } from '../src/api/leaderboard-streams';
import { ReplyCache } from '../src/api/reply-cache';
import { createApiServer } from '../src/api/server';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/log';

const CLIENT_SECONDS = 20;

function flood(port: number, connections: number, bytes: number): void {
  const request = Buffer.from('GET /x HTTP/1.1\r\nHost: a\r\n\r\n');
  const payload = Buffer.concat(Array<Buffer>(Math.ceil(bytes / request.length)).fill(request));
  for (let i = 0; i < connections; i++) {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(payload));
    socket.on('error', () => undefined);
    socket.pause(); // reads nothing
  }
  setTimeout(() => process.exit(0), CLIENT_SECONDS * 1000);
}

function serve(connections: number, bytes: number): void {
  const logger = createLogger({ logLevel: 'silent' });
  const streams = new LeaderboardStreams({ read: async () => new Map(), logger, heartbeatMs: 60_000 });
  const deps = { pool: {} as pg.Pool, leaderboardCache: new ReplyCache(0), streams, maxStreams: 100, registry: new Registry(), logger, readiness: async () => ({ ready: true, checks: {} }) };
  const server = createApiServer(deps, loadConfig({}).api);
  server.listen(0, '127.0.0.1', () => {
    const port = (server.address() as AddressInfo).port;
    let longestLateMs = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      longestLateMs = Math.max(longestLateMs, now - last - 100);
      last = now;
    }, 100);
    let peakRss = 0;
    const memory = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 200);
    const client = fork(process.argv[1]!, ['--client', String(port), String(connections), String(bytes)]);
    client.on('exit', () => {
      clearInterval(timer);
      clearInterval(memory);
      console.log(JSON.stringify({ connections, bytesEach: bytes, longestTimerLateMs: Math.round(longestLateMs), peakRssMB: Math.round(peakRss / 1e6) }));
      process.exit(0);
    });
  });
}

const args = process.argv.slice(2);
if (args[0] === '--client') flood(Number(args[1]), Number(args[2]), Number(args[3]));
else serve(Number(args[0] ?? 1000), Number(args[1] ?? 128 * 1024));
