/**
 * `occurredAt` with more than six fractional digits (.NET writes seven, Go nine): the event's
 * time keeps microseconds, the digits past the sixth dropped, both in the consumer's order
 * and in what Postgres stores. Postgres given the digits itself rounds them: a claim at
 * .1234569 stored as .123457 ties a rival claim at .123457, and the smaller eventId of the
 * rival would win reconciliation's final answer where the contract's order (here) gives the
 * treasure to the earlier claim.
 */
import { describe, expect, it } from 'vitest';
import { parseOccurredAt, type HuntEvent } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { reconcileHunts } from '../../src/store/correctness/reconcile';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { readProjection } from '../../src/store/read/projection';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { treasureClaimed } from '../helpers/event-builders';

const db = useTestDatabase();
const second = new Date(Date.now() - 60_000).toISOString().slice(0, 19);

describe('occurredAt past the microsecond', () => {
  it('is stored and ordered by its first six fractional digits, as the consumer orders it', async () => {
    const earlier = treasureClaimed({ eventId: 'b-earlier', huntId: 'h', playerId: 'ann', treasureId: 't1', points: 100, occurredAt: `${second}.1234569Z` });
    const rival = treasureClaimed({ eventId: 'a-rival', huntId: 'h', playerId: 'bob', treasureId: 't1', points: 100, occurredAt: `${second}.123457+00:00` });
    // The rival arrives first: the hot path credits it provisionally; reconciliation decides.
    const events: HuntEvent[] = [rival, earlier];
    for (const event of events) {
      await withTransaction(db.pool, (client) => applyEvents(client, [{ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }]));
    }

    const { rows } = await db.pool.query<{ event_id: string; micros: string }>(
      `SELECT event_id, to_char(occurred_at AT TIME ZONE 'UTC', 'US') AS micros FROM events ORDER BY event_id`,
    );
    expect(rows).toEqual([
      { event_id: 'a-rival', micros: '123457' },
      { event_id: 'b-earlier', micros: '123456' }, // cut, not rounded to 123457
    ]);

    await reconcileHunts(db.pool, ['h'], 'run-precision', true);
    const final = await readProjection(db.pool);
    expect(final).toEqual(foldEvents(events));
    expect(final.treasureWinners).toEqual([expect.objectContaining({ eventId: 'b-earlier', playerId: 'ann' })]);
  });
});
