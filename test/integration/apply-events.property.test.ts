/**
 * DESIGN invariant 4, hot-path half: applying random in-order streams incrementally to the
 * real Postgres projections, in random micro-batches, gives exactly the reference fold.
 * Also: replaying the whole stream again changes nothing (exactly-once effect). And the same
 * holds for the hot path's way (commitMicroBatch with a plain insert of the events its memory
 * of stored eventIds does not hold, src/ingest/known-events.ts), on either kind of connection,
 * however many eventIds that memory holds: a stored eventId it forgot costs a transaction,
 * never a wrong result, and one it holds costs nothing.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { HuntEvent } from '../../src/events/schema';
import { parseOccurredAt } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { applyEvents, type AcceptedEvent } from '../../src/store/hot-path/apply-events';
import { KnownEvents, siftKnownEvents } from '../../src/ingest/known-events';
import { createIngestPool } from '../../src/ingest/service';
import { commitMicroBatch } from '../../src/pipeline/commit';
import { rowsOf } from '../../src/store/hot-path/event-rows';
import { originsOf } from '../../src/store/hot-path/record-origins';
import { withTransaction } from '../../src/store/transaction';
import { eventStreamArb } from '../helpers/arbitraries';
import { useTestDatabase } from '../helpers/database-fixture';
import { projectionOf } from '../helpers/ingest';

const db = useTestDatabase();
let ingestPool: pg.Pool;

beforeAll(() => {
  ingestPool = createIngestPool({ databaseUrl: db.url }, 1, () => undefined);
});
afterAll(async () => {
  await ingestPool.end();
});

function accepted(event: HuntEvent): AcceptedEvent {
  const instant = parseOccurredAt(event.occurredAt);
  if (!instant) throw new Error(`generated an invalid occurredAt: ${event.occurredAt}`);
  return { event, instant, source: 'property-test' };
}

/** Applies the stream in consecutive micro-batches of the given sizes, one transaction each. */
async function applyInBatches(events: HuntEvent[], batchSizes: number[]): Promise<void> {
  let at = 0;
  for (let i = 0; at < events.length; i++) {
    const size = batchSizes[i % batchSizes.length] ?? 1;
    await withTransaction(db.pool, (client) => applyEvents(client, events.slice(at, at + size).map(accepted)));
    at += size;
  }
}

describe('incremental application vs the reference fold', () => {
  it('gives identical results on random in-order streams, whatever the micro-batching', async () => {
    await fc.assert(
      fc.asyncProperty(
        eventStreamArb({ order: 'event-time', duplicates: 'conflicting', maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 25 }), { minLength: 1, maxLength: 5 }),
        async (stream, batchSizes) => {
          await db.pool.query('TRUNCATE events, hunts, player_scores, clue_credits, treasure_winners');
          await applyInBatches(stream, batchSizes);
          const expected = foldEvents(stream);
          expect(await projectionOf(db.pool)).toEqual(expected);

          // A full redelivery of the stream is a no-op.
          await applyInBatches(stream, [7]);
          expect(await projectionOf(db.pool)).toEqual(expected);
        },
      ),
      { numRuns: 80 },
    );
  });

  it('gives identical results sent as the hot path sends them, with a plain insert, however many stored eventIds the memory holds', async () => {
    let forgotten = 0;
    await fc.assert(
      fc.asyncProperty(
        eventStreamArb({ order: 'event-time', duplicates: 'conflicting', maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 25 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 80 }),
        fc.boolean(),
        async (stream, batchSizes, capacity, pipelining) => {
          await db.pool.query('TRUNCATE events, hunts, player_scores, clue_credits, treasure_winners');
          const known = new KnownEvents(capacity);
          // The hot path's pool writes a batch's statements at once; the other one by one.
          const pool = pipelining ? ingestPool : db.pool;
          const conflicts = await commitInBatches(pool, stream, batchSizes, known);
          // A memory that holds the whole stream leaves out every repeat: no plain insert meets one.
          if (capacity >= stream.length) expect(conflicts).toBe(0);
          forgotten += conflicts;
          const expected = foldEvents(stream);
          expect(await projectionOf(db.pool)).toEqual(expected);

          // A full redelivery of the stream is a no-op, whether the memory still holds an eventId or not.
          forgotten += await commitInBatches(pool, stream, [7], known);
          expect(await projectionOf(db.pool)).toEqual(expected);
        },
      ),
      { numRuns: 60 },
    );
    // The runs did go through the conflict path (a redelivered eventId the memory had dropped).
    expect(forgotten).toBeGreaterThan(0);
  });
});

/**
 * Commits the stream in micro-batches as the hot path does (src/ingest/flush.ts), each sifted
 * against `known` and remembered once committed; resolves to the batches whose plain insert
 * met a stored eventId.
 */
async function commitInBatches(pool: pg.Pool, events: HuntEvent[], batchSizes: number[], known: KnownEvents): Promise<number> {
  let conflicts = 0;
  let at = 0;
  for (let i = 0; at < events.length; i++) {
    const size = batchSizes[i % batchSizes.length] ?? 1;
    const batch = events.slice(at, at + size);
    const rows = rowsOf(batch.map((event) => ({ event, source: 'property-test' })));
    const repeats = siftKnownEvents(rows, known, () => 0);
    const origins = originsOf(batch.map(() => ({ source: 'property-test', value: null })));
    const result = await commitMicroBatch(pool, 'property-test', { rows, origins, rejected: [], offsets: [] }, { plainInsert: { leaveOut: repeats } });
    if (!result.isolated) known.remember(rows, repeats, () => 0);
    if (result.plainInsertConflicted) conflicts++;
    at += size;
  }
  return conflicts;
}
