/**
 * Applies accepted events to the raw store and the projections, inside the caller's
 * transaction. The one implementation of "store and score" shared by the hot path, backfills
 * and DLQ replays.
 *
 * Exactly-once effect: events are inserted `ON CONFLICT (event_id) DO NOTHING`, and only the
 * rows really inserted produce projection deltas, so a redelivered or replayed event changes
 * nothing. Set-based: every statement binds whole arrays once (`unnest`), whatever the batch
 * size.
 *
 * Scoring here is incremental, in arrival order (provisional, see CONTRACT.md): the first
 * clue.found / hint.used / treasure.claimed to arrive for its key is credited. Display name
 * and active flag compare event time, which is cheap to get exactly right. Reconciliation
 * repairs the rest to the final answer.
 */
import type pg from 'pg';
import type { EventInstant, HuntEvent } from '../events/schema';
import { deltasOf, isLater, type PlayerDelta } from './player-deltas';
import type { RecordOrigin } from './quarantine';

export interface AcceptedEvent {
  event: HuntEvent;
  instant: EventInstant;
  /** Provenance for the raw store, e.g. `kafka:hunt.events:3:1200`, `backfill:<job>`. */
  source: string;
  /** The record it was read from, to reject it as `unprocessable` if the database refuses it. */
  origin?: RecordOrigin;
}

export interface ApplyResult {
  /** Events stored for the first time (and scored). */
  inserted: number;
  /** Events whose eventId was already stored (or repeated within the batch): no effect. */
  duplicates: number;
  /** The hunts the batch touched, sorted. */
  huntIds: string[];
}

/**
 * Stores and scores `events` in the caller's transaction. Locks each touched hunt's fence
 * row first (sorted, so concurrent writers cannot deadlock), which serializes with repairs.
 */
export async function applyEvents(client: pg.ClientBase, events: readonly AcceptedEvent[]): Promise<ApplyResult> {
  if (events.length === 0) return { inserted: 0, duplicates: 0, huntIds: [] };
  const unique = firstOfEachEventId(events);
  const huntIds = [...new Set(unique.map((e) => e.event.huntId))].sort();
  await lockHunts(client, huntIds);

  const insertedIds = await insertEvents(client, unique);
  const inserted = unique.filter((e) => insertedIds.has(e.event.eventId));
  if (inserted.length > 0) {
    const credits = await creditClues(client, inserted);
    const wins = await awardTreasures(client, inserted);
    await upsertPlayers(client, deltasOf(inserted, credits, wins));
    await updateHuntStats(client, inserted);
  }
  return { inserted: inserted.length, duplicates: events.length - inserted.length, huntIds };
}

function firstOfEachEventId(events: readonly AcceptedEvent[]): AcceptedEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => {
    if (seen.has(e.event.eventId)) return false;
    seen.add(e.event.eventId);
    return true;
  });
}

async function lockHunts(client: pg.ClientBase, huntIds: string[]): Promise<void> {
  await client.query({
    name: 'hunt-fence-lock',
    text: `INSERT INTO hunts (hunt_id) SELECT h FROM unnest($1::text[]) AS h ORDER BY h
           ON CONFLICT (hunt_id) DO UPDATE SET updated_at = now()`,
    values: [huntIds],
  });
}

/**
 * One JSON parameter instead of seven arrays: pg's text-array encoding escapes every element
 * (payloads are full of quotes), while JSON.stringify is native and each payload travels as
 * a nested object, parsed once by Postgres.
 */
async function insertEvents(client: pg.ClientBase, events: AcceptedEvent[]): Promise<Set<string>> {
  const rows = events.map((e) => ({
    event_id: e.event.eventId,
    hunt_id: e.event.huntId,
    player_id: e.event.playerId,
    type: e.event.type,
    occurred_at: e.event.occurredAt,
    payload: e.event.payload,
    source: e.source,
  }));
  const { rows: inserted } = await client.query<{ event_id: string }>({
    name: 'insert-events',
    text: `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source)
           SELECT event_id, hunt_id, player_id, type, occurred_at, payload, source
             FROM jsonb_to_recordset($1::jsonb) AS r(event_id text, hunt_id text, player_id text, type text,
                                                     occurred_at timestamptz, payload jsonb, source text)
           ON CONFLICT (event_id) DO NOTHING
           RETURNING event_id`,
    values: [JSON.stringify(rows)],
  });
  return new Set(inserted.map((r) => r.event_id));
}

export interface Credit {
  huntId: string;
  playerId: string;
  kind: 'found' | 'hint';
  points: number;
}

/** First arrival per (hunt, player, clue, kind) is credited; returns the credits that took. */
async function creditClues(client: pg.ClientBase, events: AcceptedEvent[]): Promise<Credit[]> {
  const candidates = events.flatMap((e) => {
    if (e.event.type === 'clue.found') return [{ e, clueId: e.event.payload.clueId, kind: 'found', points: e.event.payload.points }];
    if (e.event.type === 'hint.used') return [{ e, clueId: e.event.payload.clueId, kind: 'hint', points: e.event.payload.penalty }];
    return [];
  });
  if (candidates.length === 0) return [];
  const { rows } = await client.query<{ hunt_id: string; player_id: string; kind: 'found' | 'hint'; points: number }>({
    name: 'credit-clues',
    text: `INSERT INTO clue_credits (hunt_id, player_id, clue_id, kind, event_id, occurred_at, points)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::int[])
           ON CONFLICT (hunt_id, player_id, clue_id, kind) DO NOTHING
           RETURNING hunt_id, player_id, kind, points`,
    values: [
      candidates.map((c) => c.e.event.huntId),
      candidates.map((c) => c.e.event.playerId),
      candidates.map((c) => c.clueId),
      candidates.map((c) => c.kind),
      candidates.map((c) => c.e.event.eventId),
      candidates.map((c) => c.e.event.occurredAt),
      candidates.map((c) => c.points),
    ],
  });
  return rows.map((r) => ({ huntId: r.hunt_id, playerId: r.player_id, kind: r.kind, points: r.points }));
}

export interface Win {
  huntId: string;
  playerId: string;
  points: number;
}

/** First arrival per (hunt, treasure) wins, provisionally; returns the wins that took. */
async function awardTreasures(client: pg.ClientBase, events: AcceptedEvent[]): Promise<Win[]> {
  const claims = events.flatMap((e) => (e.event.type === 'treasure.claimed' ? [{ ...e, payload: e.event.payload }] : []));
  if (claims.length === 0) return [];
  const { rows } = await client.query<{ hunt_id: string; player_id: string; points: number }>({
    name: 'award-treasures',
    text: `INSERT INTO treasure_winners (hunt_id, treasure_id, player_id, event_id, occurred_at, points)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int[])
           ON CONFLICT (hunt_id, treasure_id) DO NOTHING
           RETURNING hunt_id, player_id, points`,
    values: [
      claims.map((c) => c.event.huntId),
      claims.map((c) => c.payload.treasureId),
      claims.map((c) => c.event.playerId),
      claims.map((c) => c.event.eventId),
      claims.map((c) => c.event.occurredAt),
      claims.map((c) => c.payload.points),
    ],
  });
  return rows.map((r) => ({ huntId: r.hunt_id, playerId: r.player_id, points: r.points }));
}

/**
 * Adds score and count deltas; display name and active flag move only to a later
 * (occurredAt, eventId) than the one that set them, so their arrival order does not matter.
 */
async function upsertPlayers(client: pg.ClientBase, deltas: PlayerDelta[]): Promise<void> {
  const later = (at: string, event: string) =>
    `excluded.${at} IS NOT NULL AND (p.${at} IS NULL OR (excluded.${at}, excluded.${event}) > (p.${at}, p.${event}))`;
  const nameIsLater = later('display_name_at', 'display_name_event');
  const activeIsLater = later('active_at', 'active_event');
  await client.query({
    name: 'upsert-players',
    text: `INSERT INTO player_scores AS p (hunt_id, player_id, score, clues_found, treasures_claimed,
             display_name, display_name_at, display_name_event, active, active_at, active_event)
           SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::int[],
             $6::text[], $7::timestamptz[], $8::text[], $9::bool[], $10::timestamptz[], $11::text[])
           ON CONFLICT (hunt_id, player_id) DO UPDATE SET
             score = p.score + excluded.score,
             clues_found = p.clues_found + excluded.clues_found,
             treasures_claimed = p.treasures_claimed + excluded.treasures_claimed,
             display_name = CASE WHEN ${nameIsLater} THEN excluded.display_name ELSE p.display_name END,
             display_name_event = CASE WHEN ${nameIsLater} THEN excluded.display_name_event ELSE p.display_name_event END,
             display_name_at = CASE WHEN ${nameIsLater} THEN excluded.display_name_at ELSE p.display_name_at END,
             active = CASE WHEN ${activeIsLater} THEN excluded.active ELSE p.active END,
             active_event = CASE WHEN ${activeIsLater} THEN excluded.active_event ELSE p.active_event END,
             active_at = CASE WHEN ${activeIsLater} THEN excluded.active_at ELSE p.active_at END`,
    values: [
      deltas.map((d) => d.huntId),
      deltas.map((d) => d.playerId),
      deltas.map((d) => d.score),
      deltas.map((d) => d.cluesFound),
      deltas.map((d) => d.treasuresClaimed),
      deltas.map((d) => d.displayName?.value ?? null),
      deltas.map((d) => d.displayName?.occurredAt ?? null),
      deltas.map((d) => d.displayName?.eventId ?? null),
      deltas.map((d) => d.activity?.active ?? true),
      deltas.map((d) => d.activity?.occurredAt ?? null),
      deltas.map((d) => d.activity?.eventId ?? null),
    ],
  });
}

async function updateHuntStats(client: pg.ClientBase, events: AcceptedEvent[]): Promise<void> {
  const perHunt = new Map<string, { count: number; newest: AcceptedEvent }>();
  for (const e of events) {
    const stats = perHunt.get(e.event.huntId);
    if (!stats) perHunt.set(e.event.huntId, { count: 1, newest: e });
    else {
      stats.count++;
      if (isLater(stampOf(e), stampOf(stats.newest))) stats.newest = e;
    }
  }
  const rows = [...perHunt.entries()];
  await client.query({
    name: 'update-hunt-stats',
    text: `UPDATE hunts h SET events_applied = h.events_applied + d.n,
             as_of = GREATEST(h.as_of, d.newest), updated_at = now()
           FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS d(hunt_id, n, newest)
           WHERE h.hunt_id = d.hunt_id`,
    values: [rows.map(([id]) => id), rows.map(([, s]) => s.count), rows.map(([, s]) => s.newest.event.occurredAt)],
  });
}

function stampOf(e: AcceptedEvent) {
  return { instant: e.instant, eventId: e.event.eventId, occurredAt: e.event.occurredAt };
}
