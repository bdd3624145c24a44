/** Events stored for a test: raw into `events` alone, or applied as the hot path applies them. */
import type pg from 'pg';
import { parseOccurredAt, type HuntEvent } from '../../src/events/schema';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';

/** Applies `events` in one transaction as the hot path does: stored, deduplicated and scored into the projections. */
export function applyInOneTransaction(pool: pg.Pool, events: readonly HuntEvent[], source = 'test') {
  return withTransaction(pool, (client) => applyEvents(client, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source }))));
}

/** Raw events written straight into `events`, without the hot path's projections (what a rebuild or a recompute reads). */

/** Stores `events` in stream order, so seq follows it and the first record of an eventId is the one kept. */
export async function storeEventsInOrder(pool: pg.Pool, events: readonly HuntEvent[]): Promise<void> {
  await pool.query(
    `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source)
     SELECT e, h, p, t, o, d, 'test' FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[])
       WITH ORDINALITY AS u(e, h, p, t, o, d, n) ORDER BY n
     ON CONFLICT (event_id) DO NOTHING`,
    [events.map((e) => e.eventId), events.map((e) => e.huntId), events.map((e) => e.playerId), events.map((e) => e.type),
      events.map((e) => e.occurredAt), events.map((e) => JSON.stringify(e.payload))],
  );
}
