/**
 * The live leaderboard page, in headless Chromium (Debian's, through playwright-core): open
 * a hunt's page, produce an event, and see the new score on the page within a second, with
 * no reload.
 */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import type { HuntEvent } from '../../src/events/schema';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderboardStreams } from '../../src/api/leaderboard-streams';
import { ReplyCache } from '../../src/api/reply-cache';
import { createApiServer } from '../../src/api/server';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound, joined, recordOf } from '../helpers/event-builders';
import { createTestTopics, sendRecords, startIngestProcess, type IngestProcess, type TestTopics } from '../helpers/ingest';
import { connectSse } from '../helpers/sse';
import { waitFor } from '../helpers/wait';

const CHROMIUM = '/usr/bin/chromium';
const db = useTestDatabase();
let topics: TestTopics;
let ingest: IngestProcess;
let profileDir: string;
let browser: BrowserContext;
const base = Date.now() - 60_000;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: npm test installs it (infra/install-system-packages.sh, Debian's chromium)`);
  topics = await createTestTopics(1);
  ingest = startIngestProcess(db.url, topics);
  await ingest.ready();
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-chromium-'));
  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await ingest?.kill('SIGTERM');
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
});

describe('the live leaderboard page', () => {
  it('shows a new score pushed on its stream, without a reload', async () => {
    const send = (events: HuntEvent[]) => sendRecords(topics.events, events.map((e) => ({ key: e.huntId, value: recordOf(e) })));
    await send([joined({ eventId: 'j1', huntId: 'page-hunt', playerId: 'ann', displayName: 'Ann', occurredAt: new Date(base).toISOString() })]);
    const page = await browser.newPage();
    let loads = 0;
    page.on('load', () => loads++);
    const requested: string[] = [];
    page.on('request', (request) => void requested.push(new URL(request.url()).pathname));
    await page.goto(`${ingest.apiUrl}/hunts/page-hunt`);
    await expect.poll(() => page.locator('tr[data-player="ann"] .score').textContent(), { timeout: 10_000 }).toBe('0');

    await send([clueFound({ eventId: 'c1', huntId: 'page-hunt', playerId: 'ann', clueId: 'c1', points: 70, occurredAt: new Date(base + 1000).toISOString() })]);
    await page.locator('tr[data-player="ann"] .score', { hasText: /^70$/ }).waitFor({ timeout: 5000 });
    // Pushed, not reloaded: the page loaded once (freshness itself is measured by the benches).
    expect(loads).toBe(1);
    // Pushed on the stream: the page asked for nothing else (no polling of the leaderboard).
    expect(requested.filter((p) => p !== '/favicon.ico')).toEqual(['/hunts/page-hunt', '/hunts/page-hunt/leaderboard/stream']);
    expect(await page.title()).toBe('Leaderboard: page-hunt');
  });
  it('follows its own stream when its address has empty segments (a base URL ending in / joined with /hunts/...)', async () => {
    await sendRecords(topics.events, [{ key: 'slash-hunt', value: recordOf(clueFound({ eventId: 's1', huntId: 'slash-hunt', playerId: 'cy', clueId: 'c1', points: 30, occurredAt: new Date(base).toISOString() })) }]);
    const page = await browser.newPage();
    const requested: string[] = [];
    page.on('request', (request) => void requested.push(request.url()));
    await page.goto(`${ingest.apiUrl}//hunts/slash-hunt`);
    await page.locator('tr[data-player="cy"] .score', { hasText: /^30$/ }).waitFor({ timeout: 10_000 });
    // Before, the page asked for //hunts/slash-hunt/leaderboard/stream: a host named "hunts".
    expect(requested).toContain(`${ingest.apiUrl}/hunts/slash-hunt/leaderboard/stream?limit=50`);
    await page.close();
  });
  it('follows the stream again when it was refused (EventSource gives up on a 503), and shows the scores', async () => {
    const send = (events: HuntEvent[]) => sendRecords(topics.events, events.map((e) => ({ key: e.huntId, value: recordOf(e) })));
    await send([clueFound({ eventId: 'r1', huntId: 'refused-hunt', playerId: 'bob', clueId: 'c1', points: 40, occurredAt: new Date(base).toISOString() })]);
    const page = await browser.newPage();
    // The stream refused twice, as by a proxy in a deploy, then served.
    let refusals = 0;
    await page.route('**/leaderboard/stream*', (route) =>
      refusals++ < 2 ? route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"too many live streams"}' }) : route.continue(),
    );
    await page.goto(`${ingest.apiUrl}/hunts/refused-hunt`);
    // Before, the page stayed at 'reconnecting…' for good.
    await expect.poll(() => page.locator('tr[data-player="bob"] .score').textContent(), { timeout: 20_000 }).toBe('40');
    expect(refusals).toBeGreaterThanOrEqual(3);
  });

  it("lets a browser's own EventSource, refused at the streams' cap, come back by itself once a place is free", async () => {
    // The read API alone, in this process, with room for one stream: a plain EventSource
    // (not the live page, which follows again by itself) on a page of the same origin.
    const logger = createLogger({ logLevel: 'fatal' });
    const streams = new LeaderboardStreams({ read: async (requests) => new Map(requests.map((r) => [r.huntId, { huntId: r.huntId, asOf: null, entries: [] }])), logger, heartbeatMs: 60_000 });
    const deps = { pool: {} as never, leaderboardCache: new ReplyCache(0), streams, maxStreams: 1, registry: new Registry(), logger, readiness: async () => ({ ready: true, checks: {} }) };
    const server = createApiServer(deps, loadConfig({}).api);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const holder = connectSse(`${origin}/hunts/h/leaderboard/stream`);
    try {
      await holder.next(0);
      const page = await browser.newPage();
      await page.goto(`${origin}/healthz`);
      await page.evaluate(() => {
        const seen = { states: [] as number[], messages: 0 };
        const source = new EventSource('/hunts/h/leaderboard/stream');
        source.onerror = () => void seen.states.push(source.readyState);
        source.addEventListener('leaderboard', () => void seen.messages++);
        Object.assign(globalThis, { seen });
      });
      const seen = () => page.evaluate(() => (globalThis as unknown as { seen: { states: number[]; messages: number } }).seen);
      await expect.poll(async () => (await seen()).states.length, { timeout: 10_000 }).toBeGreaterThan(0);
      // Refused, and still reconnecting (0), not closed (2) as after a 503.
      expect((await seen()).states[0]).toBe(0);
      expect((await seen()).messages).toBe(0);

      holder.close();
      await waitFor('the held stream counted out', () => streams.streams === 0);
      await expect.poll(async () => (await seen()).messages, { timeout: 25_000 }).toBeGreaterThan(0);
      await page.close();
    } finally {
      holder.close();
      streams.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
