/**
 * DESIGN invariant 4, hot-path half: applying random in-order streams incrementally to the
 * real Postgres projections, in random micro-batches, gives exactly the reference fold.
 * Also: replaying the whole stream again changes nothing (exactly-once effect).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { parseOccurredAt } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { applyEvents, type AcceptedEvent } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { eventStreamArb } from '../helpers/arbitraries';
import { useTestDatabase } from '../helpers/database-fixture';
import { projectionOf } from '../helpers/ingest';

const db = useTestDatabase();

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
        eventStreamArb({ order: 'event-time', duplicates: 'exact', maxLength: 60 }),
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
});
