/**
 * DESIGN invariant 4, batch half, against a real (cloned test) Postgres: the set-based
 * recomputation and merge of src/store/batch/recompute.ts give exactly the reference fold on
 * random streams in any arrival order, for every filter (a seq bound, a hunt list) and
 * whatever the merge steps; and on in-order streams they write the very rows the hot path
 * writes, event-time stamps and hunt stats included, so the hot path can carry on from them.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parseOccurredAt, type HuntEvent } from '../../src/events/schema';
import { dedupeByEventId, foldEvents, type FoldResult } from '../../src/rules/reference';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { LIVE_PROJECTION_TABLES, mergeInto, recomputeInto, type RecomputeFilter } from '../../src/store/batch/recompute';
import { withTransaction } from '../../src/store/transaction';
import { eventStreamArb } from '../helpers/arbitraries';
import { useTestDatabase } from '../helpers/database-fixture';
import { projectionOf } from '../helpers/ingest';
import { storeEventsInOrder } from '../helpers/stored-events';

const db = useTestDatabase();

const TARGETS = { ...LIVE_PROJECTION_TABLES, huntStats: 'hunts' };
const reset = () => db.pool.query('TRUNCATE events, hunts, player_scores, clue_credits, treasure_winners RESTART IDENTITY');

const inTransaction = (work: (client: pg.PoolClient) => Promise<unknown>) => withTransaction(db.pool, work);
const recompute = (filter: RecomputeFilter) => inTransaction((c) => recomputeInto(c, TARGETS, filter));
const merge = (afterSeq: number, maxSeq?: number) => inTransaction((c) => mergeInto(c, TARGETS, maxSeq === undefined ? { afterSeq } : { afterSeq, maxSeq }));

/** Stores the stream in order (seq follows it; the first record of an eventId is kept); returns each stored event's seq. */
async function storeEvents(events: readonly HuntEvent[]): Promise<number[]> {
  await storeEventsInOrder(db.pool, events);
  return (await db.pool.query<{ seq: number }>('SELECT seq FROM events ORDER BY seq')).rows.map((r) => r.seq);
}

/** Events per hunt, as hunts.events_applied must count them. */
async function expectHuntCounts(events: readonly HuntEvent[]): Promise<void> {
  const expected: Record<string, number> = {};
  for (const e of events) expected[e.huntId] = (expected[e.huntId] ?? 0) + 1;
  const { rows } = await db.pool.query<{ hunt_id: string; events_applied: number }>('SELECT hunt_id, events_applied FROM hunts WHERE events_applied > 0');
  expect(Object.fromEntries(rows.map((r) => [r.hunt_id, r.events_applied]))).toEqual(expected);
}

function onlyHunt(result: FoldResult, huntId: string): FoldResult {
  const mine = <T extends { huntId: string }>(rows: T[]) => rows.filter((r) => r.huntId === huntId);
  return { players: mine(result.players), clueCredits: mine(result.clueCredits), hintPenalties: mine(result.hintPenalties), treasureWinners: mine(result.treasureWinners) };
}

describe('recomputeInto and mergeInto vs the reference fold', () => {
  it('give the final answer on random arrival-order streams, per seq bound, per hunt and per merge step', async () => {
    await fc.assert(
      fc.asyncProperty(eventStreamArb({ order: 'arrival', duplicates: 'conflicting', maxLength: 60 }), fc.nat(), fc.nat(), async (stream, cutA, cutB) => {
        await reset();
        const seqs = await storeEvents(stream);
        const stored = dedupeByEventId(stream); // in seq order
        const [k, j] = [cutA % (seqs.length + 1), cutB % (seqs.length + 1)].sort((a, b) => a - b) as [number, number];
        const seqOf = (n: number) => (n === 0 ? 0 : (seqs[n - 1] ?? 0));
        const full = foldEvents(stream);

        // Up to a seq: the fold of the first k stored events.
        await recompute({ maxSeq: seqOf(k) });
        const partial = foldEvents(stored.slice(0, k));
        expect(await projectionOf(db.pool)).toEqual(partial);
        await expectHuntCounts(stored.slice(0, k));

        // Merging the rest, in two steps, reaches the fold of everything.
        await merge(seqOf(k), seqOf(j));
        expect(await projectionOf(db.pool)).toEqual(foldEvents(stored.slice(0, j)));
        await merge(seqOf(j));
        expect(await projectionOf(db.pool)).toEqual(full);
        await expectHuntCounts(stored);

        // One hunt recomputed: it becomes final, the other keeps its rows.
        await recompute({ maxSeq: seqOf(k) });
        await recompute({ huntIds: ['h1'] });
        const mixed = await projectionOf(db.pool);
        expect(onlyHunt(mixed, 'h1')).toEqual(onlyHunt(full, 'h1'));
        expect(onlyHunt(mixed, 'h2')).toEqual(onlyHunt(partial, 'h2'));

        await recompute({});
        expect(await projectionOf(db.pool)).toEqual(full);

        // Both filters, as reprocess and reconcile call it: h1 up to the seq, h2 untouched.
        await recompute({ huntIds: ['h1'], maxSeq: seqOf(k) });
        const bounded = await projectionOf(db.pool);
        expect(onlyHunt(bounded, 'h1')).toEqual(onlyHunt(partial, 'h1'));
        expect(onlyHunt(bounded, 'h2')).toEqual(onlyHunt(full, 'h2'));
      }),
      { numRuns: 60 },
    );
  });

  it('recomputes twice in one transaction: each call copies its own scope and drops the copy', async () => {
    await fc.assert(
      fc.asyncProperty(eventStreamArb({ order: 'arrival', duplicates: 'conflicting', maxLength: 40 }), async (stream) => {
        await reset();
        await storeEvents(stream);
        await db.pool.query('DELETE FROM hunts');
        const copyLeft = await inTransaction(async (c) => {
          await recomputeInto(c, TARGETS, { huntIds: ['h1'] });
          await recomputeInto(c, TARGETS, { huntIds: ['h2'] });
          return (await c.query(`SELECT to_regclass('pg_temp.recompute_scope') IS NOT NULL AS left`)).rows[0].left;
        });
        expect(copyLeft).toBe(false);
        expect(await projectionOf(db.pool)).toEqual(foldEvents(stream));
        await expectHuntCounts(dedupeByEventId(stream));
      }),
      { numRuns: 20 },
    );
  });

  it('writes, on in-order streams, exactly the rows the hot path writes, stamps and stats included', async () => {
    const rowsOf = async () => ({
      players: (await db.pool.query('SELECT * FROM player_scores ORDER BY hunt_id, player_id')).rows,
      credits: (await db.pool.query('SELECT * FROM clue_credits ORDER BY hunt_id, player_id, clue_id, kind')).rows,
      winners: (await db.pool.query('SELECT * FROM treasure_winners ORDER BY hunt_id, treasure_id')).rows,
      hunts: (await db.pool.query('SELECT hunt_id, events_applied, as_of FROM hunts ORDER BY hunt_id')).rows,
    });
    await fc.assert(
      fc.asyncProperty(eventStreamArb({ order: 'event-time', maxLength: 50 }), fc.nat(), async (stream, cut) => {
        await reset();
        const accepted = stream.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt) as NonNullable<ReturnType<typeof parseOccurredAt>>, source: 'test' }));
        await inTransaction((c) => applyEvents(c, accepted));
        const hotPath = await rowsOf();

        await recompute({});
        expect(await rowsOf()).toEqual(hotPath);
        const seq = (await db.pool.query<{ seq: number }>('SELECT seq FROM events ORDER BY seq OFFSET $1 LIMIT 1', [cut % (stream.length + 1)])).rows[0]?.seq;
        // Stats are written only for hunts with events in scope: start them afresh.
        await db.pool.query('DELETE FROM hunts');
        await recompute({ maxSeq: (seq ?? Number.MAX_SAFE_INTEGER) - 1 });
        await merge((seq ?? Number.MAX_SAFE_INTEGER) - 1);
        expect(await rowsOf()).toEqual(hotPath);
      }),
      { numRuns: 40 },
    );
  });
});
