/**
 * The reference fold: the CONTRACT's scoring rules written to be obviously correct, not
 * fast. Every rule is "group the events, take the earliest (or latest) by event time" and
 * nothing else, so the result cannot depend on input order except through deduplication.
 *
 * This is the definition of the rules. The two SQL engines are derived from it: the hot
 * path's incremental statement (store/hot-path/apply-events.ts) and the batch recompute
 * (store/batch/recompute.ts), built from the fragments in sql.ts; property tests check both
 * against this fold. The orders it uses are in order.ts.
 *
 * Deduplication mirrors ingest: the first record with an eventId wins (first stored), later
 * records with the same eventId are ignored even if their content differs.
 */
import type { HuntEvent } from '../events/schema';
import { compareByteOrder, compareEventTime, compareLeaderboard } from './order';

export interface PlayerStanding {
  huntId: string;
  playerId: string;
  displayName: string | null;
  score: number;
  /** Distinct clues credited by clue.found (a credit worth 0 points still counts). */
  cluesFound: number;
  /** Treasures this player won (a win worth 0 points still counts). */
  treasuresClaimed: number;
  active: boolean;
}

/** The clue.found that scored for (hunt, player, clue). */
export interface ClueCredit {
  huntId: string;
  playerId: string;
  clueId: string;
  eventId: string;
  points: number;
}

/** The hint.used that cost a penalty for (hunt, player, clue). */
export interface HintPenalty {
  huntId: string;
  playerId: string;
  clueId: string;
  eventId: string;
  penalty: number;
}

/** The winning treasure.claimed for (hunt, treasure). */
export interface TreasureWinner {
  huntId: string;
  treasureId: string;
  playerId: string;
  eventId: string;
  points: number;
}

/** Every array sorted by its key fields in byte order, so two results compare with toEqual. */
export interface FoldResult {
  players: PlayerStanding[];
  clueCredits: ClueCredit[];
  hintPenalties: HintPenalty[];
  treasureWinners: TreasureWinner[];
}

/** A leaderboard row exactly as the read API serves it: a standing within its hunt, ranked. */
export interface LeaderboardEntry extends Omit<PlayerStanding, 'huntId'> {
  rank: number;
}

/** Keeps the first record of each eventId, in input order. */
export function dedupeByEventId(events: readonly HuntEvent[]): HuntEvent[] {
  const seen = new Set<string>();
  return events.filter((event) => !seen.has(event.eventId) && seen.add(event.eventId));
}

export function foldEvents(events: readonly HuntEvent[]): FoldResult {
  const accepted = dedupeByEventId(events);
  const byPlayer = groupBy(accepted, (e) => [e.huntId, e.playerId]);

  const clueCredits = [...groupBy(accepted.filter(isType('clue.found')), (e) => [e.huntId, e.playerId, e.payload.clueId]).values()]
    .map(earliest)
    .map((e): ClueCredit => ({ huntId: e.huntId, playerId: e.playerId, clueId: e.payload.clueId, eventId: e.eventId, points: e.payload.points }));

  const hintPenalties = [...groupBy(accepted.filter(isType('hint.used')), (e) => [e.huntId, e.playerId, e.payload.clueId]).values()]
    .map(earliest)
    .map((e): HintPenalty => ({ huntId: e.huntId, playerId: e.playerId, clueId: e.payload.clueId, eventId: e.eventId, penalty: e.payload.penalty }));

  const treasureWinners = [...groupBy(accepted.filter(isType('treasure.claimed')), (e) => [e.huntId, e.payload.treasureId]).values()]
    .map(earliest)
    .map((e): TreasureWinner => ({ huntId: e.huntId, treasureId: e.payload.treasureId, playerId: e.playerId, eventId: e.eventId, points: e.payload.points }));

  const players = [...byPlayer.values()].map((own): PlayerStanding => {
    const { huntId, playerId } = own[0] as HuntEvent; // groups are never empty
    const mine = <T extends { huntId: string; playerId: string }>(rows: T[]) =>
      rows.filter((r) => r.huntId === huntId && r.playerId === playerId);
    const credits = mine(clueCredits);
    const penalties = mine(hintPenalties);
    const wins = mine(treasureWinners);
    const named = own.filter(isType('player.joined')).filter((e) => e.payload.displayName !== undefined);
    const membership = own.filter((e) => e.type === 'player.joined' || e.type === 'player.left');
    return {
      huntId,
      playerId,
      displayName: named.length > 0 ? (latest(named).payload.displayName ?? null) : null,
      score: sum(credits.map((c) => c.points)) - sum(penalties.map((p) => p.penalty)) + sum(wins.map((w) => w.points)),
      cluesFound: credits.length,
      treasuresClaimed: wins.length,
      // Implicit join: a player with no joined/left events is active.
      active: membership.length === 0 || latest(membership).type !== 'player.left',
    };
  });

  return normalizeFoldResult({ players, clueCredits, hintPenalties, treasureWinners });
}

/**
 * Sorts every array of a fold result by its key fields (byte order). Use it on results
 * built elsewhere (for example read back from Postgres) before comparing with foldEvents.
 */
export function normalizeFoldResult(result: FoldResult): FoldResult {
  const byKeys = <T>(...keys: Array<(row: T) => string>) => (a: T, b: T) => {
    for (const key of keys) {
      const order = compareByteOrder(key(a), key(b));
      if (order !== 0) return order;
    }
    return 0;
  };
  return {
    players: [...result.players].sort(byKeys((r) => r.huntId, (r) => r.playerId)),
    clueCredits: [...result.clueCredits].sort(byKeys((r) => r.huntId, (r) => r.playerId, (r) => r.clueId)),
    hintPenalties: [...result.hintPenalties].sort(byKeys((r) => r.huntId, (r) => r.playerId, (r) => r.clueId)),
    treasureWinners: [...result.treasureWinners].sort(byKeys((r) => r.huntId, (r) => r.treasureId)),
  };
}

/** Ranks the given standings (one hunt's) in leaderboard order; rank is the 1-based position. */
export function rankStandings(standings: readonly PlayerStanding[]): LeaderboardEntry[] {
  return [...standings].sort(compareLeaderboard).map((s, index) => ({
    rank: index + 1,
    playerId: s.playerId,
    displayName: s.displayName,
    score: s.score,
    cluesFound: s.cluesFound,
    treasuresClaimed: s.treasuresClaimed,
    active: s.active,
  }));
}

/** The full leaderboard of one hunt from a fold result; empty for an unknown hunt. */
export function leaderboardOf(result: FoldResult, huntId: string): LeaderboardEntry[] {
  return rankStandings(result.players.filter((p) => p.huntId === huntId));
}

function isType<T extends HuntEvent['type']>(type: T) {
  return (event: HuntEvent): event is Extract<HuntEvent, { type: T }> => event.type === type;
}

// JSON of the key parts: unambiguous whatever characters the parts contain.
function groupBy<T>(items: readonly T[], keyParts: (item: T) => string[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = JSON.stringify(keyParts(item));
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

// Both take a non-empty list (every group has at least one event).
function earliest<T extends HuntEvent>(events: T[]): T {
  return events.reduce((best, e) => (compareEventTime(e, best) < 0 ? e : best));
}

function latest<T extends HuntEvent>(events: T[]): T {
  return events.reduce((best, e) => (compareEventTime(e, best) > 0 ? e : best));
}

function sum(values: number[]): number {
  return values.reduce((total, v) => total + v, 0);
}
