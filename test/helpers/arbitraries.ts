/**
 * fast-check arbitraries for realistic event streams. The id pools are tiny on purpose so
 * that the cases the rules are about happen often: the same clue found twice, a treasure
 * claimed by several players, equal occurredAt instants (also written with different
 * offsets), eventIds whose UTF-16 order differs from their byte order, redeliveries.
 */
import fc from 'fast-check';
import type { HuntEvent } from '../../src/events/schema';
import { compareEventTime } from '../../src/rules/order';

export const HUNT_IDS = ['h1', 'h2'] as const;
export const PLAYER_IDS = ['p1', 'p2', 'p3', 'P4'] as const;
export const CLUE_IDS = ['c1', 'c2', 'c3'] as const;
export const TREASURE_IDS = ['t1', 't2'] as const;
export const TEAM_IDS = ['red', 'blue'] as const;

const T0_MS = Date.UTC(2026, 10, 22, 10, 0, 0);

/**
 * Characters for eventIds: U+FFFD sorts after '😀' in UTF-16 but before it in UTF-8 bytes,
 * so a comparator that uses JS string order picks the wrong winner in a tie.
 */
const EVENT_ID_CHARS = ['a', 'b', 'B', '0', '-', 'é', '\uFFFD', '😀'] as const;

export const eventIdArb: fc.Arbitrary<string> = fc
  .array(fc.constantFrom(...EVENT_ID_CHARS), { minLength: 1, maxLength: 5 })
  .map((chars) => chars.join(''));

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/** Writes an instant (epoch µs) as an occurredAt string in the given offset and precision. */
export function formatOccurredAt(epochMicros: number, offsetMinutes: number | 'Z', fractionDigits: 0 | 3 | 6): string {
  const micros = ((epochMicros % 1_000_000) + 1_000_000) % 1_000_000;
  const wholeSecondsMs = (epochMicros - micros) / 1000;
  const shiftMinutes = offsetMinutes === 'Z' ? 0 : offsetMinutes;
  const local = new Date(wholeSecondsMs + shiftMinutes * 60_000).toISOString().slice(0, 19);
  const fraction = fractionDigits === 0 ? '' : `.${pad(micros, 6).slice(0, fractionDigits)}`;
  if (offsetMinutes === 'Z') return `${local}${fraction}Z`;
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${local}${fraction}${sign}${pad(Math.floor(abs / 60), 2)}:${pad(abs % 60, 2)}`;
}

/**
 * occurredAt values within a few seconds of each other so instants collide often; the same
 * instant comes in several offsets, and sub-millisecond fractions appear.
 */
export const occurredAtArb: fc.Arbitrary<string> = fc
  .record({
    second: fc.integer({ min: 0, max: 6 }),
    fractionMicros: fc.constantFrom(0, 0, 1, 1000, 250_000),
    offset: fc.constantFrom<number | 'Z'>('Z', 'Z', 0, 120, -330, 840),
    digits: fc.constantFrom<0 | 3 | 6>(0, 3, 6),
  })
  .map(({ second, fractionMicros, offset, digits }) => {
    // Use the fewest digits that still say the exact instant, or more.
    const needed = fractionMicros === 0 ? 0 : fractionMicros % 1000 === 0 ? 3 : 6;
    const shown = (Math.max(digits, needed) as 0 | 3 | 6);
    return formatOccurredAt((T0_MS + second * 1000) * 1000 + fractionMicros, offset, shown);
  });

export interface EventPools {
  hunts?: readonly string[];
  players?: readonly string[];
  clues?: readonly string[];
  treasures?: readonly string[];
}

/** One valid event of any type. */
export function huntEventArb(pools: EventPools = {}): fc.Arbitrary<HuntEvent> {
  const envelope = {
    eventId: eventIdArb,
    schemaVersion: fc.constant(1 as const),
    huntId: fc.constantFrom(...(pools.hunts ?? HUNT_IDS)),
    playerId: fc.constantFrom(...(pools.players ?? PLAYER_IDS)),
    occurredAt: occurredAtArb,
  };
  const clueId = fc.constantFrom(...(pools.clues ?? CLUE_IDS));
  const treasureId = fc.constantFrom(...(pools.treasures ?? TREASURE_IDS));
  return fc.oneof(
    fc.record({
      ...envelope,
      type: fc.constant('player.joined' as const),
      payload: fc.record(
        { displayName: fc.constantFrom('Ada', 'Bo', 'Çelik 🧭'), teamId: fc.constantFrom(...TEAM_IDS) },
        { requiredKeys: [] },
      ),
    }),
    fc.record({
      ...envelope,
      type: fc.constant('clue.found' as const),
      payload: fc.record({ clueId, points: fc.constantFrom(0, 1, 10, 50, 1000) }),
    }),
    fc.record({
      ...envelope,
      type: fc.constant('hint.used' as const),
      payload: fc.record({ clueId, penalty: fc.constantFrom(0, 3, 25, 1000) }),
    }),
    fc.record({
      ...envelope,
      type: fc.constant('treasure.claimed' as const),
      payload: fc.record({ treasureId, points: fc.constantFrom(0, 100, 500, 10_000) }),
    }),
    fc.record({ ...envelope, type: fc.constant('player.left' as const), payload: fc.constant({}) }),
  );
}

export interface StreamOptions extends EventPools {
  minLength?: number;
  maxLength?: number;
  /**
   * `event-time`: the distinct events sorted by (occurredAt instant, eventId), as the batch
   * side replays them. `arrival` (default): any order, as Kafka may deliver them.
   */
  order?: 'arrival' | 'event-time';
  /**
   * Extra records reusing an eventId, always placed after the record they copy (the first
   * stored wins): `exact` redeliveries, or `conflicting` ones with other content.
   */
  duplicates?: 'none' | 'exact' | 'conflicting';
}

/** A stream of valid events; without duplicates every eventId is distinct. */
export function eventStreamArb(options: StreamOptions = {}): fc.Arbitrary<HuntEvent[]> {
  return redeliveredStreamArb(options).map(({ stream }) => stream);
}

/**
 * The stream of eventStreamArb together with `firsts`: the same stream before the
 * redeliveries were added, i.e. the first record of every eventId, in stream order. Built
 * alongside the stream, not derived from it, so it can serve as an oracle for deduplication.
 */
export function redeliveredStreamArb(options: StreamOptions = {}): fc.Arbitrary<{ firsts: HuntEvent[]; stream: HuntEvent[] }> {
  const { minLength = 0, maxLength = 40, order = 'arrival', duplicates = 'none' } = options;
  // 'medium' size: fast-check's default favours streams too short to collide.
  const distinct = fc.uniqueArray(huntEventArb(options), { selector: (e) => e.eventId, minLength, maxLength, size: 'medium' });
  const copies = fc.array(fc.tuple(fc.nat(), fc.nat(), huntEventArb(options)), {
    maxLength: duplicates === 'none' ? 0 : Math.max(1, Math.floor(maxLength / 4)),
  });
  return fc.tuple(distinct, copies).map(([events, copySpecs]) => {
    const base = order === 'event-time' ? [...events].sort(compareEventTime) : events;
    const stream = [...base];
    for (const [pick, shift, other] of copySpecs) {
      const original = base[pick % Math.max(1, base.length)];
      if (original === undefined) break;
      const copy: HuntEvent = duplicates === 'exact' ? structuredClone(original) : { ...other, eventId: original.eventId };
      const after = stream.indexOf(original) + 1;
      stream.splice(after + (shift % (stream.length - after + 1)), 0, copy);
    }
    return { firsts: base, stream };
  });
}

/** A stream together with a random reordering of it. */
export function streamAndShuffleArb(options: StreamOptions = {}): fc.Arbitrary<[HuntEvent[], HuntEvent[]]> {
  return eventStreamArb(options).chain((stream) =>
    fc.tuple(fc.constant(stream), fc.shuffledSubarray(stream, { minLength: stream.length, maxLength: stream.length })),
  );
}
