/**
 * The scoring rules' shared fragments in SQL, written once for every engine that runs them
 * in Postgres: the hot path's incremental statement (store/hot-path/apply-events.ts), the
 * batch recompute and merge (store/batch/recompute.ts) and the read queries
 * (store/read/leaderboard.ts). Each mirrors a rule of the reference fold (reference.ts and
 * order.ts), which is the definition; the property tests check the engines against it.
 *
 * Ids are `COLLATE "C"` in every table, so they compare by bytes, as compareByteOrder does.
 * Arguments are column names or aliases from code, never input.
 */

// --- Event time: mirrors compareEventTime (order.ts) ---

/**
 * ORDER BY items that put a group's earliest event first (its latest with `latest`), as the
 * fold's `earliest` and `latest` pick them. `event` must compare by bytes (`COLLATE "C"`).
 */
export function eventTimeOrder(which: 'earliest' | 'latest', at = 'occurred_at', event = 'event_id'): string {
  return which === 'earliest' ? `${at}, ${event}` : `${at} DESC, ${event} DESC`;
}

/** Row `x` happened before row `y` (aliases of rows with occurred_at and event_id). */
export function isEarlier(x: string, y: string): string {
  return `(${x}.occurred_at, ${x}.event_id) < (${y}.occurred_at, ${y}.event_id)`;
}

/**
 * "The later stamp wins", in an upsert `INSERT INTO ... AS p ... ON CONFLICT DO UPDATE`: the
 * incoming row's (at, event) stamp is later than the stored row's (no stamp loses to any).
 * This is how display name and active flag stay the fold's `latest` whatever order the
 * events are applied in.
 */
export function isLaterStamp(at: string, event: string): string {
  return `excluded.${at} IS NOT NULL AND (p.${at} IS NULL OR (excluded.${at}, excluded.${event}) > (p.${at}, p.${event}))`;
}

/** SET item of such an upsert: `column` takes the incoming value when `rule` (isLaterStamp) holds. */
export function takeIfLater(column: string, rule: string): string {
  return `${column} = CASE WHEN ${rule} THEN excluded.${column} ELSE p.${column} END`;
}

// --- Clue credits: mirrors the fold's clueCredits (clue.found) and hintPenalties (hint.used) ---

/** The event types that credit a clue, for `type IN ...`. */
export const CLUE_CREDIT_TYPES = `('clue.found', 'hint.used')`;

/** The clue_credits `kind` of such an event (`type`: its type column): 'found' or 'hint'. */
export function clueCreditKind(type: string): string {
  return `CASE ${type} WHEN 'clue.found' THEN 'found' ELSE 'hint' END`;
}

/** The credit's amount from stored event `e`'s payload: a clue.found's points, a hint.used's penalty. */
export function clueCreditAmount(e: string): string {
  return `(CASE ${e}.type WHEN 'clue.found' THEN ${e}.payload->>'points' ELSE ${e}.payload->>'penalty' END)::int`;
}

// --- Score: mirrors the fold's score and cluesFound ---

/** A clue credit's effect on the score: +points for a found clue, -penalty for a hint. */
export function signedCreditPoints(credit?: string): string {
  const x = credit === undefined ? '' : `${credit}.`;
  return `CASE ${x}kind WHEN 'found' THEN ${x}points ELSE -${x}points END`;
}

/** Whether a clue credit counts in cluesFound (found clues; hints do not). */
export function isClueFound(credit?: string): string {
  return `${credit === undefined ? '' : `${credit}.`}kind = 'found'`;
}

/** A player's score from per-player sums of credits and of wins (rows with `score`; none: 0). */
export function playerScore(credited: string, won: string): string {
  return `coalesce(${credited}.score, 0) + coalesce(${won}.score, 0)`;
}

// --- Leaderboard order: mirrors compareLeaderboard (order.ts) ---

/** ORDER BY items of the leaderboard: score descending, then player_id (bytes, its "C" collation). */
export const LEADERBOARD_ORDER = 'score DESC, player_id';

/**
 * Player row `o` comes before player row `p` of the same hunt in the leaderboard order: a
 * higher score, or the same score and a smaller player_id. Two disjoint conditions rather
 * than one with OR, so a count of each is one range of the leaderboard index (hunt_id,
 * score DESC, player_id) and costs as much as the players it counts.
 */
export function scoresAhead(o: string, p: string): string {
  return `${o}.score > ${p}.score`;
}
export function tiedAhead(o: string, p: string): string {
  return `${o}.score = ${p}.score AND ${o}.player_id < ${p}.player_id`;
}
