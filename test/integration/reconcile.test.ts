/**
 * reconcile on the real services: the late-claim story (the hot path scores a late claim
 * provisionally to the wrong player; reconcile repairs it and records what changed), and
 * repairs running while the hot path ingests lose no increment.
 */
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReconcileSummary } from '../../src/correctness/reconcile-job';
import { foldEvents } from '../../src/rules/reference';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { joined, treasureClaimed } from '../helpers/event-builders';
import { createTestTopics, projectionOf, sendRecords, startIngestProcess, waitCaughtUp } from '../helpers/ingest';
import { inOrderTraffic, sendAtRate } from '../helpers/traffic';
import { uniqueName, waitFor } from '../helpers/wait';
import { startInProcessWorker, temporalClient } from '../helpers/worker';

let client: Client;
let closeClient: () => Promise<void>;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  ({ client, close: closeClient } = await temporalClient());
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await closeClient?.();
});

async function setup() {
  const db: TestDatabase = await createTestDatabase();
  cleanups.push(() => db.dispose());
  const taskQueue = uniqueName('reconcile');
  const worker = await startInProcessWorker(db.pool, taskQueue);
  cleanups.push(() => worker.stop());
  const topics = await createTestTopics(4);
  // /metrics reads its Postgres figures on a timer; a short one lets the test see them soon.
  const ingest = startIngestProcess(db.url, topics, { API_METRICS_REFRESH_MS: '200' });
  cleanups.push(() => ingest.kill('SIGKILL'));
  await ingest.ready();
  const reconcile = (input: object = {}) =>
    client.workflow.execute('reconcile', { taskQueue, workflowId: uniqueName('reconcile'), args: [input] }) as Promise<ReconcileSummary>;
  return { db, topics, ingest, reconcile };
}

describe('reconcile', () => {
  it('repairs a late treasure claim scored to the wrong player, and records the drift', async () => {
    const { db, topics, ingest, reconcile } = await setup();
    const at = (s: number) => new Date(Date.now() - 600_000 + s * 1000).toISOString();
    const events = [
      joined({ eventId: 'j-alice', huntId: 'late', playerId: 'alice', displayName: 'Alice', occurredAt: at(1) }),
      joined({ eventId: 'j-bob', huntId: 'late', playerId: 'bob', occurredAt: at(2) }),
      // Bob's claim happened second but arrives first; Alice's arrives last.
      treasureClaimed({ eventId: 'claim-bob', huntId: 'late', playerId: 'bob', treasureId: 'gold', points: 500, occurredAt: at(20) }),
      treasureClaimed({ eventId: 'claim-alice', huntId: 'late', playerId: 'alice', treasureId: 'gold', points: 500, occurredAt: at(10) }),
    ];
    await sendRecords(topics.events, events.map((e) => ({ key: e.huntId, value: JSON.stringify(e) })));
    await waitCaughtUp(db.pool, topics);

    const provisional = await projectionOf(db.pool);
    expect(provisional.treasureWinners).toMatchObject([{ treasureId: 'gold', playerId: 'bob' }]);
    expect(provisional.players.map((p) => [p.playerId, p.score])).toEqual([['alice', 0], ['bob', 500]]);

    const summary = await reconcile({ settleMs: 0 });
    expect(summary).toMatchObject({ hunts: 1, playersDrifted: 2, treasuresChanged: 1, repaired: true });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    const final = await projectionOf(db.pool);
    expect(final.treasureWinners).toMatchObject([{ treasureId: 'gold', playerId: 'alice', eventId: 'claim-alice' }]);
    expect(final.players.map((p) => [p.playerId, p.score, p.treasuresClaimed])).toEqual([['alice', 500, 1], ['bob', 0, 0]]);

    const { rows: drift } = await db.pool.query(
      `SELECT kind, subject_id, live, final FROM reconcile_drift WHERE run_id = $1 ORDER BY kind, subject_id`,
      [summary.runId],
    );
    expect(drift).toEqual([
      { kind: 'player', subject_id: 'alice', live: expect.objectContaining({ score: 0, treasuresClaimed: 0 }), final: expect.objectContaining({ score: 500, treasuresClaimed: 1 }) },
      { kind: 'player', subject_id: 'bob', live: expect.objectContaining({ score: 500 }), final: expect.objectContaining({ score: 0 }) },
      { kind: 'treasure', subject_id: 'gold', live: expect.objectContaining({ playerId: 'bob' }), final: expect.objectContaining({ playerId: 'alice' }) },
    ]);

    // Each gauge is refreshed by a query of its own, so a scrape can fall between two of them.
    const expected = [
      /hunt_reconcile_last_run_drift\{kind="treasure"\} 1\b/,
      /hunt_reconcile_drift_records\{kind="player"\} 2\b/,
      /hunt_reconcile_drifted_runs\{kind="player"\} 1\b/,
      /hunt_reconcile_drifted_runs\{kind="treasure"\} 1\b/,
    ];
    const metrics = await waitFor('the drift on /metrics', async () => {
      const text = await (await fetch(`${ingest.apiUrl}/metrics`)).text();
      return expected.every((gauge) => gauge.test(text)) && text;
    }).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${(await (await fetch(`${ingest.apiUrl}/metrics`)).text()).split('\n').filter((l) => l.startsWith('hunt_reconcile')).join('\n')}`);
    });
    for (const gauge of expected) expect(metrics).toMatch(gauge);

    // Nothing new since: the watermark makes `{}` a no-op; an explicit check finds no drift.
    expect(await reconcile({ settleMs: 0 })).toMatchObject({ hunts: 0 });
    expect(await reconcile({ huntIds: ['late'], repair: false })).toMatchObject({ hunts: 1, playersDrifted: 0, treasuresChanged: 0 });
  });

  it('loses no increment when repairs run while the hot path ingests', async () => {
    const { db, topics, reconcile } = await setup();
    const traffic = inOrderTraffic(24_000, 21);
    const hunts = [...new Set(traffic.events.map((e) => e.huntId))];
    const sending = sendAtRate(topics.events, traffic.records, 3000);
    const drift: unknown[] = [];
    let runs = 0;
    let stop = false;
    void sending.finally(() => (stop = true));
    while (!stop) {
      // Repair every hunt, over and over, while increments keep landing.
      const summary = (await reconcile({ huntIds: hunts, huntsPerTransaction: 1 })) as { playersDrifted: number; treasuresChanged: number; creditsDrifted?: number };
      // In order, the hot path alone is exact: a run that found drift found an increment an
      // earlier repair lost (which it then mended, so the end state alone would not show it).
      if (summary.playersDrifted !== 0 || summary.treasuresChanged !== 0 || (summary.creditsDrifted ?? 0) !== 0) drift.push(summary);
      runs++;
    }
    await sending;
    await waitCaughtUp(db.pool, topics);
    expect(runs).toBeGreaterThanOrEqual(3);
    expect(drift).toEqual([]);
    // In-order traffic: the hot path alone gives the final result, so any increment a
    // repair lost would show here. No reconcile runs after the stream ends.
    expect(await projectionOf(db.pool)).toEqual(foldEvents(traffic.events));
  });
});
