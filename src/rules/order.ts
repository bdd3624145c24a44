/**
 * The contract's two orders, in TypeScript: event time (which event of a group is the
 * earliest or latest) and the leaderboard order. The reference fold uses them; their SQL
 * counterparts are in sql.ts, and anything else that must agree with Postgres uses these.
 */
import { parseOccurredAt, type EventInstant } from '../events/schema';

/**
 * Orders strings as their UTF-8 bytes would (Buffer.compare, Postgres `COLLATE "C"`),
 * without encoding them. UTF-16 code units already sort like code points, hence like UTF-8
 * bytes, except surrogates (code points above U+FFFF) must sort after U+E000..U+FFFF.
 * Exact for well-formed strings; the schema refuses ids with unpaired surrogates.
 */
export function compareByteOrder(a: string, b: string): number {
  const shared = Math.min(a.length, b.length);
  for (let i = 0; i < shared; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointOrderKey(x) - codePointOrderKey(y);
  }
  return a.length - b.length;
}

function codePointOrderKey(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit <= 0xdfff ? unit + 0x2000 : unit - 0x800;
}

export function compareInstants(a: EventInstant, b: EventInstant): number {
  return a.epochMs - b.epochMs || a.micros - b.micros;
}

export interface TimedEvent {
  occurredAt: string;
  eventId: string;
}

/**
 * The contract's event-time order: `occurredAt` by instant (so `10:00+02:00` equals
 * `08:00Z`), ties by `eventId` in byte order. Total on deduplicated events. Parses both
 * timestamps on every call: meant for the reference fold and tests, not a hot loop
 * (there, compare the `instant` from classifyRecord with compareInstants).
 * Throws on an `occurredAt` the schema would reject.
 * SQL: `(occurred_at, event_id)` with event_id `COLLATE "C"` (sql.ts).
 */
export function compareEventTime(a: TimedEvent, b: TimedEvent): number {
  return compareInstants(instantOf(a), instantOf(b)) || compareByteOrder(a.eventId, b.eventId);
}

function instantOf(event: TimedEvent): EventInstant {
  const instant = parseOccurredAt(event.occurredAt);
  if (instant === undefined) throw new Error(`event ${event.eventId}: invalid occurredAt ${JSON.stringify(event.occurredAt)}`);
  return instant;
}

/**
 * The leaderboard order: score descending, then playerId ascending in byte order (what
 * Postgres gives with `ORDER BY score DESC, player_id COLLATE "C"`; sql.ts). Ids are ASCII
 * today, so byte order is also plain string order; comparing bytes keeps it right if that
 * changes.
 */
export function compareLeaderboard(
  a: { score: number; playerId: string },
  b: { score: number; playerId: string },
): number {
  return b.score - a.score || compareByteOrder(a.playerId, b.playerId);
}
