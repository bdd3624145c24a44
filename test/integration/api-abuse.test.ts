/**
 * The read API under abuse, while the hot path works: malformed encodings, huge paths and
 * other broken requests each get a 4xx (never a 500, never an error-level log line), and
 * 2,000 concurrent slow connections (headers trickled a byte a second) are cut off by the
 * connection cap and the header timeout, while ingest keeps committing and the API answers
 * again as soon as they are gone.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { createTestTopics, startIngestProcess, waitCaughtUp, type IngestProcess, type TestTopics } from '../helpers/ingest';
import { inOrderTraffic, sendAtRate } from '../helpers/traffic';
import { waitFor } from '../helpers/wait';

const HEADERS_TIMEOUT_MS = 4000;
const MAX_CONNECTIONS = 1024;
const SLOW_CONNECTIONS = 2000;

const db = useTestDatabase();
let topics: TestTopics;
let ingest: IngestProcess;
let port: number;

beforeAll(async () => {
  topics = await createTestTopics(4);
  ingest = startIngestProcess(db.url, topics, { API_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS), API_MAX_CONNECTIONS: String(MAX_CONNECTIONS) });
  await ingest.ready();
  port = Number(new URL(ingest.apiUrl).port);
  const seed = inOrderTraffic(2000, 11);
  await sendAtRate(topics.events, seed.records, 4000);
  await waitCaughtUp(db.pool, topics);
});
afterAll(async () => {
  await ingest?.kill('SIGKILL');
});

/** Sends raw bytes (fetch would fix or refuse what these tests send) and reads the status. */
function rawRequest(request: string | Buffer, timeoutMs = 10_000): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let head = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve(match ? Number(match[1]) : undefined);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (head.includes('\r\n')) done();
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}

const get = (target: string, headers = '') => `GET ${target} HTTP/1.1\r\nHost: api\r\n${headers}Connection: close\r\n\r\n`;

async function committedOffsets(): Promise<number> {
  const { rows } = await db.pool.query<{ n: string | null }>('SELECT sum(next_offset)::text AS n FROM consumer_offsets WHERE group_id = $1', [topics.groupId]);
  return Number(rows[0]?.n ?? 0);
}

describe('read API under abuse', () => {
  it('answers every malformed request with a 4xx, never a 500 or an error in the log', async () => {
    const bad: [string, string | Buffer][] = [
      ['a broken UTF-8 escape', get('/hunts/%E0%A4%A/leaderboard')],
      ['a lone %', get('/hunts/%/leaderboard')],
      ['an overlong UTF-8 encoding', get('/hunts/%C0%AF/leaderboard')],
      ['invalid UTF-8 in a player id', get('/hunts/h/players/%FF%FE')],
      ['a NUL byte', get('/hunts/%00/leaderboard')],
      ['a broken escape in the query', get('/hunts/h/leaderboard?limit=%E0%A4')],
      ['a repeated parameter', get('/hunts/h/leaderboard?limit=1&limit=2')],
      ['an unknown parameter', get('/hunts/h/leaderboard?limit=1&sort=desc')],
      ['a huge limit', get(`/hunts/h/leaderboard?limit=${'9'.repeat(400)}`)],
      ['a long path', get(`/hunts/${'a'.repeat(2000)}/leaderboard`)],
      ['a huge path', get(`/hunts/${'a'.repeat(100_000)}/leaderboard`)],
      ['a huge header', get('/healthz', `X-Filler: ${'b'.repeat(100_000)}\r\n`)],
      ['an absolute-form target', get('http://evil.example/hunts/h/leaderboard')],
      ['an asterisk target', get('*')],
      ['a POST', 'POST /hunts/h/leaderboard HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'],
      ['not HTTP at all', 'HELLO THERE\r\n\r\n'],
      ['control bytes in the target', Buffer.from('GET /hunts/\x01\x7f/leaderboard HTTP/1.1\r\nHost: api\r\n\r\n', 'latin1')],
    ];
    const statuses = await Promise.all(bad.map(async ([what, request]) => [what, await rawRequest(request)] as const));
    for (const [what, status] of statuses) {
      expect(status, what).toBeGreaterThanOrEqual(400);
      expect(status, what).toBeLessThan(500);
    }
    // And a well-formed request still gets its answer.
    expect(await rawRequest(get('/hunts/no-such-hunt/leaderboard'))).toBe(404);
    const errors = fs.readFileSync(ingest.logFile, 'utf8').split('\n').filter((line) => line.includes('"level":50'));
    expect(errors).toEqual([]);
  });

  it('holds 2,000 concurrent slow connections: cut off by the cap and the header timeout, while ingest keeps committing', async () => {
    const traffic = inOrderTraffic(30_000, 12);
    const before = await committedOffsets();
    const sending = sendAtRate(topics.events, traffic.records, 3000);

    // Slowloris: open many connections, each sending a header line a second, never ending.
    const started = Date.now();
    const slow = Array.from({ length: SLOW_CONNECTIONS }, () => {
      return new Promise<{ closedAfterMs: number; status?: number }>((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        let response = '';
        let trickle: NodeJS.Timeout | undefined;
        socket.once('connect', () => {
          socket.write('GET /hunts/h/leaderboard HTTP/1.1\r\nHost: api\r\n');
          trickle = setInterval(() => socket.write('X-Slow: 1\r\n'), 1000);
        });
        socket.on('data', (chunk: Buffer) => (response += chunk.toString('latin1')));
        socket.on('error', () => undefined);
        socket.once('close', () => {
          clearInterval(trickle);
          const match = /^HTTP\/1\.[01] (\d{3})/.exec(response);
          resolve({ closedAfterMs: Date.now() - started, status: match ? Number(match[1]) : undefined });
        });
      });
    });

    // While they hang on: the API holds no more than its cap, and ingest keeps committing.
    await new Promise((resolve) => setTimeout(resolve, HEADERS_TIMEOUT_MS / 2));
    const during = await committedOffsets();
    expect(during).toBeGreaterThan(before);

    const ends = await Promise.all(slow);
    const latest = Math.max(...ends.map((e) => e.closedAfterMs));
    // Each was closed by the server: at once beyond the cap, at the header timeout otherwise.
    expect(latest).toBeLessThan(HEADERS_TIMEOUT_MS + 5000);
    const answered = ends.filter((e) => e.status !== undefined);
    for (const end of answered) expect(end.status).toBe(408);
    expect(ends.filter((e) => e.closedAfterMs < HEADERS_TIMEOUT_MS - 1000).length).toBeGreaterThanOrEqual(SLOW_CONNECTIONS - MAX_CONNECTIONS);

    // The attack over, the API answers at once; and ingest never stopped.
    expect(await rawRequest(get('/healthz'), 2000)).toBe(200);
    await sending;
    const afterAttack = await committedOffsets();
    expect(afterAttack).toBeGreaterThan(during);
    await waitCaughtUp(db.pool, topics);
    const metrics = await waitFor('metrics', async () => (await fetch(`${ingest.apiUrl}/metrics`)).text());
    expect(metrics).toMatch(/hunt_api_responses_total\{code="200",route="healthz"\} [1-9]/); // the counter's lines look like this
    expect(metrics).not.toMatch(/hunt_api_responses_total\{code="500"/);
    expect(fs.readFileSync(ingest.logFile, 'utf8').split('\n').filter((line) => line.includes('"level":50'))).toEqual([]);
  });
});
