/**
 * The reconcile activity on the real Postgres, with its scope paged and its groups sized:
 * no query brings more than a page (or a group) of hunts to the worker, a retry resumes by
 * hunt id in the middle of a page, and a group is also cut by its hunts' events, a hunt
 * bigger than the budget going alone. (MockActivityEnvironment runs the real activity.)
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createReconcileActivities, type ReconcileActivityInput, type ReconcileCheckpoint, type ReconcileSummary } from '../../src/correctness/reconcile-job';
import type { HuntEvent } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { useTestDatabase } from '../helpers/database-fixture';
import { applyInOneTransaction } from '../helpers/stored-events';
import { clueFound, joined } from '../helpers/event-builders';
import { projectionOf } from '../helpers/ingest';

const db = useTestDatabase();

let clock = Date.now() - 3_600_000;
/** A hunt's events: a join, then `clues` finds (so 1 + clues events in all). */
function huntEvents(huntId: string, clues = 2, tag = ''): HuntEvent[] {
  return [
    joined({ eventId: `${huntId}${tag}-j`, huntId, playerId: 'ann', displayName: 'Ann', occurredAt: new Date(clock++).toISOString() }),
    ...Array.from({ length: clues }, (_, i) =>
      clueFound({ eventId: `${huntId}${tag}-c${i}`, huntId, playerId: i % 2 ? 'bob' : 'ann', clueId: `c${i}`, points: 10, occurredAt: new Date(clock++).toISOString() }),
    ),
  ];
}

/** Stores events, then corrupts their hunts' live scores, so reconciliation has drift to repair. */
async function storeCorrupted(events: HuntEvent[]): Promise<void> {
  await applyInOneTransaction(db.pool, events);
  await db.pool.query('UPDATE player_scores SET score = score + 1000 WHERE hunt_id = ANY($1::text[])', [[...new Set(events.map((e) => e.huntId))]]);
}

/**
 * The pool, watched: the most rows any one query returned to Node (through the pool or a
 * client taken from it), the measure of how many hunts the worker ever holds at once.
 */
function watchedPool(pool: pg.Pool): { pool: pg.Pool; maxRows: () => number } {
  let maxRows = 0;
  const note = (result: unknown) => {
    for (const r of Array.isArray(result) ? result : [result]) maxRows = Math.max(maxRows, (r as pg.QueryResult | undefined)?.rows?.length ?? 0);
    return result;
  };
  const watchQuery = (target: { query: (...args: unknown[]) => Promise<unknown> }) =>
    (...args: unknown[]) => target.query(...args).then(note);
  const watchedClient = (client: pg.PoolClient) =>
    new Proxy(client, {
      get: (target, prop) => (prop === 'query' ? watchQuery(target as never) : Reflect.get(target, prop, target)),
    });
  const watched = new Proxy(pool, {
    get: (target, prop) => {
      if (prop === 'query') return watchQuery(target as never);
      if (prop === 'connect') return async () => watchedClient(await target.connect());
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { pool: watched, maxRows: () => maxRows };
}

const input = (runId: string, more: Partial<ReconcileActivityInput> = {}): ReconcileActivityInput => ({ runId, repair: true, huntsPerTransaction: 1, settleMs: 0, ...more });
const reconciledBy = async (runId: string) =>
  (await db.pool.query<{ hunt_id: string }>('SELECT hunt_id FROM reconcile_runs WHERE run_id = $1 ORDER BY hunt_id', [runId])).rows.map((r) => r.hunt_id);
const watermark = async () => Number((await db.pool.query(`SELECT last_seq FROM job_watermarks WHERE job = 'reconcile'`)).rows[0]?.last_seq ?? 0);

describe('reconcile, paging through its scope', () => {
  it('holds at most a page of hunts, resumes mid-page after a crash, and leaves hunts that arrive meanwhile to the next run', async () => {
    const hunts = ['hunt-1', 'hunt-2', 'hunt-3', 'hunt-4', 'hunt-5', 'hunt-6', 'hunt-7'];
    const first = hunts.flatMap((h) => huntEvents(h));
    await storeCorrupted(first);
    const watched = watchedPool(db.pool);
    const { reconcileHunts } = createReconcileActivities({ pool: watched.pool });
    const paged = (runId: string) => input(runId, { huntsPerPage: 2 });

    // Attempt 1 dies as it reports its third hunt done: in the middle of the second page.
    const attempt1 = new MockActivityEnvironment();
    const beats: ReconcileCheckpoint[] = [];
    attempt1.on('heartbeat', (details: ReconcileCheckpoint) => {
      beats.push(structuredClone(details));
      if (details.lastHuntDone === 'hunt-3') throw new Error('worker killed');
    });
    await expect(attempt1.run(reconcileHunts, paged('run-1'))).rejects.toThrow('worker killed');
    const checkpoint = beats.at(-1);
    expect(checkpoint).toMatchObject({ lastHuntDone: 'hunt-3', huntsDone: 3, summary: { hunts: 7 } });
    // The checkpoint is the range and a cursor, whatever the scope's size.
    expect(Object.keys(checkpoint ?? {}).sort()).toEqual(['fromSeq', 'huntsDone', 'lastHuntDone', 'summary', 'toSeq']);
    expect(await reconciledBy('run-1')).toEqual(['hunt-1', 'hunt-2', 'hunt-3']);

    // Meanwhile hunts arrive that sort before, between and after those of the scope.
    const meanwhile = ['hunt-0', 'hunt-3a', 'hunt-9'].flatMap((h) => huntEvents(h));
    await storeCorrupted(meanwhile);

    const attempt2 = new MockActivityEnvironment({ heartbeatDetails: checkpoint, attempt: 2 });
    const resumedBeats: ReconcileCheckpoint[] = [];
    attempt2.on('heartbeat', (details: ReconcileCheckpoint) => resumedBeats.push(structuredClone(details)));
    const summary = (await attempt2.run(reconcileHunts, paged('run-1'))) as ReconcileSummary;
    expect(await reconciledBy('run-1')).toEqual(hunts);
    expect(summary.hunts).toBe(7);
    expect(resumedBeats[0]).toMatchObject({ lastHuntDone: 'hunt-3', huntsDone: 3, summary: { hunts: 7 } });
    expect(resumedBeats.at(-1)).toMatchObject({ lastHuntDone: 'hunt-7', huntsDone: 7 });
    const maxSeqOfFirst = Number((await db.pool.query(`SELECT max(seq) AS s FROM events WHERE hunt_id = ANY($1::text[])`, [hunts])).rows[0].s);
    expect(await watermark()).toBe(maxSeqOfFirst);

    const next = (await new MockActivityEnvironment().run(reconcileHunts, paged('run-2'))) as ReconcileSummary;
    expect(await reconciledBy('run-2')).toEqual(['hunt-0', 'hunt-3a', 'hunt-9']);
    expect(next.hunts).toBe(3);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...first, ...meanwhile]));
    // Ten hunts went through the worker, never more than a page (or a group) of them at once.
    expect(watched.maxRows()).toBeLessThanOrEqual(2);
  });
});

describe('reconcile, sizing its groups', () => {
  const groupsOf = async (run: ReconcileActivityInput): Promise<string[]> => {
    const { reconcileHunts } = createReconcileActivities({ pool: db.pool });
    const env = new MockActivityEnvironment();
    const lastOfEachGroup: string[] = [];
    env.on('heartbeat', (details: ReconcileCheckpoint) => {
      if (details.lastHuntDone !== undefined && details.lastHuntDone !== lastOfEachGroup.at(-1)) lastOfEachGroup.push(details.lastHuntDone);
    });
    await env.run(reconcileHunts, run);
    return lastOfEachGroup;
  };

  it('cuts a group when its hunts’ events pass the budget, and puts a bigger hunt in a group of its own', async () => {
    // g-big's events are stored before the run before: one new event puts it in the next
    // scope, and its recomputation reads all 12 of them.
    await storeCorrupted(huntEvents('g-big', 10));
    await new MockActivityEnvironment().run(createReconcileActivities({ pool: db.pool }).reconcileHunts, input('run-before', { huntsPerTransaction: 20 }));
    const events = [...huntEvents('g-a', 2), ...huntEvents('g-big', 0, '-late'), ...huntEvents('g-c', 2), ...huntEvents('g-d', 2), ...huntEvents('g-e', 4)];
    await storeCorrupted(events);

    // Budget 7 events, 20 hunts: g-a (3) | g-big (12) | g-c + g-d (3 + 3) | g-e (5).
    const byScope = await groupsOf(input('run-sized', { huntsPerTransaction: 20, eventsPerTransaction: 7, huntsPerPage: 2 }));
    expect(byScope).toEqual(['g-a', 'g-big', 'g-d', 'g-e']);
    expect(await reconciledBy('run-sized')).toEqual(['g-a', 'g-big', 'g-c', 'g-d', 'g-e']);

    // A list of hunts is grouped the same way; the hunt count still cuts too.
    const byList = await groupsOf(input('run-list', { huntIds: ['g-e', 'g-d', 'g-c', 'g-big', 'g-a'], huntsPerTransaction: 1, eventsPerTransaction: 100 }));
    expect(byList).toEqual(['g-a', 'g-big', 'g-c', 'g-d', 'g-e']);
    const byListSized = await groupsOf(input('run-list-sized', { huntIds: ['g-e', 'g-d', 'g-c', 'g-big', 'g-a'], huntsPerTransaction: 20, eventsPerTransaction: 7 }));
    expect(byListSized).toEqual(['g-a', 'g-big', 'g-d', 'g-e']);
    expect(await reconciledBy('run-list-sized')).toEqual(['g-a', 'g-big', 'g-c', 'g-d', 'g-e']);
  });
});
