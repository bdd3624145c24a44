/**
 * Experiment (not shipped): the store-and-score step as ONE statement after the fence lock,
 * with data-modifying CTEs, instead of five statements whose results travel back to the
 * client between them. Variants: the batch sent as one JSON parameter or as typed arrays;
 * payload as jsonb or as typed columns (the bench's --prepare changes the schema for that).
 */
import type pg from 'pg';
import type { AcceptedEvent } from '../../src/store/apply-events';

export type Wire = 'json' | 'arrays';
export interface V2Options {
  wire: Wire;
  /** events has typed columns (subject_id, points, display_name, team_id) instead of payload jsonb. */
  typed: boolean;
}

interface Row {
  event_id: string;
  hunt_id: string;
  player_id: string;
  type: string;
  occurred_at: string;
  subject_id: string | null;
  points: number | null;
  display_name: string | null;
  team_id: string | null;
  source: string;
}

function rowOf(e: AcceptedEvent): Row {
  const ev = e.event;
  const p = ev.payload as Record<string, unknown>;
  return {
    event_id: ev.eventId,
    hunt_id: ev.huntId,
    player_id: ev.playerId,
    type: ev.type,
    occurred_at: ev.occurredAt,
    subject_id: (p.clueId ?? p.treasureId ?? null) as string | null,
    points: (p.points ?? p.penalty ?? null) as number | null,
    display_name: (p.displayName ?? null) as string | null,
    team_id: (p.teamId ?? null) as string | null,
    source: e.source,
  };
}

const later = (at: string, event: string) =>
  `excluded.${at} IS NOT NULL AND (p.${at} IS NULL OR (excluded.${at}, excluded.${event}) > (p.${at}, p.${event}))`;

function statement(options: V2Options): string {
  const input =
    options.wire === 'json'
      ? `SELECT r.*, i.n FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS i(j, n),
           jsonb_to_record(i.j) AS r(event_id text, hunt_id text, player_id text, type text, occurred_at timestamptz,
                                     subject_id text, points int, display_name text, team_id text, source text)`
      : `SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::int[], $8::text[], $9::text[], $10::text[])
           WITH ORDINALITY AS i(event_id, hunt_id, player_id, type, occurred_at, subject_id, points, display_name, team_id, source, n)`;
  const insertEvents = options.typed
    ? `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, subject_id, points, display_name, team_id, source)
       SELECT event_id, hunt_id, player_id, type, occurred_at, subject_id, points, display_name, team_id, source FROM input ORDER BY n`
    : `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source)
       SELECT event_id, hunt_id, player_id, type, occurred_at,
              CASE type WHEN 'clue.found' THEN jsonb_build_object('clueId', subject_id, 'points', points)
                        WHEN 'hint.used' THEN jsonb_build_object('clueId', subject_id, 'penalty', points)
                        WHEN 'treasure.claimed' THEN jsonb_build_object('treasureId', subject_id, 'points', points)
                        WHEN 'player.joined' THEN jsonb_strip_nulls(jsonb_build_object('displayName', display_name, 'teamId', team_id))
                        ELSE '{}'::jsonb END,
              source FROM input ORDER BY n`;
  const nameLater = later('display_name_at', 'display_name_event');
  const activeLater = later('active_at', 'active_event');
  return `
    WITH input AS (${input}),
    ins AS (${insertEvents} ON CONFLICT (event_id) DO NOTHING RETURNING event_id),
    new AS (SELECT i.* FROM input i JOIN ins USING (event_id)),
    credits AS (
      INSERT INTO clue_credits (hunt_id, player_id, clue_id, kind, event_id, occurred_at, points)
      SELECT hunt_id, player_id, subject_id, CASE type WHEN 'clue.found' THEN 'found' ELSE 'hint' END, event_id, occurred_at, points
        FROM new WHERE type IN ('clue.found', 'hint.used') ORDER BY n
      ON CONFLICT DO NOTHING
      RETURNING hunt_id, player_id, kind, points),
    wins AS (
      INSERT INTO treasure_winners (hunt_id, treasure_id, player_id, event_id, occurred_at, points)
      SELECT hunt_id, subject_id, player_id, event_id, occurred_at, points FROM new WHERE type = 'treasure.claimed' ORDER BY n
      ON CONFLICT DO NOTHING
      RETURNING hunt_id, player_id, points),
    deltas AS (
      SELECT hunt_id, player_id, sum(score)::bigint AS score, sum(clues)::int AS clues, sum(treasures)::int AS treasures FROM (
        SELECT hunt_id, player_id, 0 AS score, 0 AS clues, 0 AS treasures FROM new
        UNION ALL SELECT hunt_id, player_id, CASE kind WHEN 'found' THEN points ELSE -points END, (kind = 'found')::int, 0 FROM credits
        UNION ALL SELECT hunt_id, player_id, points, 0, 1 FROM wins) d
      GROUP BY hunt_id, player_id),
    names AS (
      SELECT DISTINCT ON (hunt_id, player_id) hunt_id, player_id, display_name, occurred_at, event_id COLLATE "C" AS event_id
        FROM new WHERE type = 'player.joined' AND display_name IS NOT NULL
       ORDER BY hunt_id, player_id, occurred_at DESC, event_id COLLATE "C" DESC),
    activity AS (
      SELECT DISTINCT ON (hunt_id, player_id) hunt_id, player_id, type = 'player.joined' AS active, occurred_at, event_id COLLATE "C" AS event_id
        FROM new WHERE type IN ('player.joined', 'player.left')
       ORDER BY hunt_id, player_id, occurred_at DESC, event_id COLLATE "C" DESC),
    players AS (
      INSERT INTO player_scores AS p (hunt_id, player_id, score, clues_found, treasures_claimed,
             display_name, display_name_at, display_name_event, active, active_at, active_event)
      SELECT d.hunt_id, d.player_id, d.score, d.clues, d.treasures, nm.display_name, nm.occurred_at, nm.event_id,
             coalesce(a.active, true), a.occurred_at, a.event_id
        FROM deltas d LEFT JOIN names nm USING (hunt_id, player_id) LEFT JOIN activity a USING (hunt_id, player_id)
      ON CONFLICT (hunt_id, player_id) DO UPDATE SET
        score = p.score + excluded.score,
        clues_found = p.clues_found + excluded.clues_found,
        treasures_claimed = p.treasures_claimed + excluded.treasures_claimed,
        display_name = CASE WHEN ${nameLater} THEN excluded.display_name ELSE p.display_name END,
        display_name_event = CASE WHEN ${nameLater} THEN excluded.display_name_event ELSE p.display_name_event END,
        display_name_at = CASE WHEN ${nameLater} THEN excluded.display_name_at ELSE p.display_name_at END,
        active = CASE WHEN ${activeLater} THEN excluded.active ELSE p.active END,
        active_event = CASE WHEN ${activeLater} THEN excluded.active_event ELSE p.active_event END,
        active_at = CASE WHEN ${activeLater} THEN excluded.active_at ELSE p.active_at END
      RETURNING 1),
    stats AS (
      UPDATE hunts h SET events_applied = h.events_applied + s.n, as_of = GREATEST(h.as_of, s.newest), updated_at = now()
        FROM (SELECT hunt_id, count(*) AS n, max(occurred_at) AS newest FROM new GROUP BY hunt_id) s
       WHERE h.hunt_id = s.hunt_id
      RETURNING 1)
    SELECT (SELECT count(*) FROM ins)::int AS inserted, (SELECT count(*) FROM players)::int AS players, (SELECT count(*) FROM stats)::int AS hunts`;
}

export async function applyEventsV2(client: pg.ClientBase, events: readonly AcceptedEvent[], options: V2Options): Promise<{ inserted: number }> {
  if (events.length === 0) return { inserted: 0 };
  const seen = new Set<string>();
  const unique = events.filter((e) => !seen.has(e.event.eventId) && seen.add(e.event.eventId));
  const huntIds = [...new Set(unique.map((e) => e.event.huntId))].sort();
  await client.query({
    name: 'v2-fence',
    text: `INSERT INTO hunts (hunt_id) SELECT h FROM unnest($1::text[]) AS h ORDER BY h ON CONFLICT (hunt_id) DO UPDATE SET updated_at = now()`,
    values: [huntIds],
  });
  const rows = unique.map(rowOf);
  const values =
    options.wire === 'json'
      ? [JSON.stringify(rows)]
      : [
          rows.map((r) => r.event_id),
          rows.map((r) => r.hunt_id),
          rows.map((r) => r.player_id),
          rows.map((r) => r.type),
          rows.map((r) => r.occurred_at),
          rows.map((r) => r.subject_id),
          rows.map((r) => r.points),
          rows.map((r) => r.display_name),
          rows.map((r) => r.team_id),
          rows.map((r) => r.source),
        ];
  const { rows: out } = await client.query<{ inserted: number }>({ name: `v2-${options.wire}-${options.typed}`, text: statement(options), values });
  return { inserted: out[0]?.inserted ?? 0 };
}

/** The schema change the typed variant needs, for the bench's --prepare. */
export const TYPED_EVENTS_SQL = `ALTER TABLE events ADD COLUMN subject_id text COLLATE "C", ADD COLUMN points integer,
  ADD COLUMN display_name text, ADD COLUMN team_id text COLLATE "C"; ALTER TABLE events DROP COLUMN payload`;
