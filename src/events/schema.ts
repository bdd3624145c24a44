/**
 * The event contract (CONTRACT.md section 1) as zod schemas: the envelope and the payload of
 * each event type, schemaVersion 1.
 *
 * Decisions the contract leaves open, taken here so that every reader of events (hot path,
 * batch plane, producer helper, JSON Schema) applies the same ones:
 * - Unknown top-level envelope fields are rejected, like unknown payload fields. A field the
 *   contract does not define can only be a client bug or a future schema version, and a
 *   future version must change `schemaVersion` anyway.
 * - `occurredAt` is `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`: seconds required, up to nine
 *   fractional digits (.NET's round-trip format writes seven, Go's RFC3339Nano nine), of
 *   which the event's time keeps six: Postgres timestamptz keeps microseconds and would round
 *   the rest, so the digits past the sixth are dropped here and in what Postgres is given
 *   (occurredAtToMicros), and ordering here and in Postgres agree. A real calendar date, year
 *   0001-9999, offset hours 00-14 (real zones span -12:00..+14:00; Postgres refuses offsets
 *   beyond ±15:59, which would turn one bad event into a failing batch).
 * - Free-text strings (`eventId`, `displayName`) count length in Unicode code points, as
 *   JSON Schema and Postgres do, and refuse U+0000 and unpaired surrogates: Postgres text
 *   cannot store the first, and UTF-8 cannot encode the second (Node would turn distinct
 *   ids into the same U+FFFD, breaking idempotency).
 */
import { z } from 'zod';
import { ID_PATTERN } from '../constants';

export const EVENT_TYPES = [
  'player.joined',
  'clue.found',
  'hint.used',
  'treasure.claimed',
  'player.left',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The shape of `occurredAt`; parseOccurredAt adds the calendar and range checks. */
export const OCCURRED_AT_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

/** Fraction digits an event's time keeps: microseconds, as Postgres timestamptz does. */
const KEPT_FRACTION_DIGITS = 6;

/** An instant with microsecond precision, split so both parts stay exact JS integers. */
export interface EventInstant {
  /** Milliseconds since the epoch (floor), as `Date` uses them. */
  epochMs: number;
  /** Microseconds within that millisecond, 0-999. */
  micros: number;
}

const MS_PER_MINUTE = 60_000;
// Date.UTC maps years 0-99 to 1900-1999; shifting by one 400-year Gregorian cycle avoids that.
const MS_PER_400_YEARS = 146_097 * 86_400_000;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Decimal value of the ASCII digits text[from..to), which the pattern has already checked. */
function digitsAt(text: string, from: number, to: number): number {
  let value = 0;
  for (let i = from; i < to; i++) value = value * 10 + text.charCodeAt(i) - 48;
  return value;
}

/**
 * Parses an `occurredAt` string under the rules above; undefined when it breaks any.
 * Reads digits at fixed positions rather than through capture groups: it runs twice per
 * record on the hot path (schema check, then the instant for ordering).
 */
export function parseOccurredAt(text: string): EventInstant | undefined {
  if (!OCCURRED_AT_PATTERN.test(text)) return undefined;
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 7);
  const day = digitsAt(text, 8, 10);
  const hour = digitsAt(text, 11, 13);
  const minute = digitsAt(text, 14, 16);
  const second = digitsAt(text, 17, 19);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const zoneStart = text.endsWith('Z') ? text.length - 1 : text.length - 6;
  let offsetMinutes = 0;
  if (zoneStart === text.length - 6) {
    const offsetHours = digitsAt(text, zoneStart + 1, zoneStart + 3);
    const offsetMins = digitsAt(text, zoneStart + 4, zoneStart + 6);
    if (offsetHours > 14 || offsetMins > 59) return undefined;
    offsetMinutes = (text.charCodeAt(zoneStart) === 45 /* - */ ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  // Fraction digits sit between the '.' at index 19 and the zone; the first six, scaled to
  // microseconds (any further ones are dropped, as occurredAtToMicros drops them for Postgres).
  const fractionDigits = Math.min(zoneStart - 20, KEPT_FRACTION_DIGITS);
  const fractionMicros = fractionDigits > 0 ? digitsAt(text, 20, 20 + fractionDigits) * 10 ** (KEPT_FRACTION_DIGITS - fractionDigits) : 0;
  const wholeSecondsMs =
    year < 100
      ? Date.UTC(year + 400, month - 1, day, hour, minute, second) - MS_PER_400_YEARS
      : Date.UTC(year, month - 1, day, hour, minute, second);
  return {
    epochMs: wholeSecondsMs + Math.floor(fractionMicros / 1000) - offsetMinutes * MS_PER_MINUTE,
    micros: fractionMicros % 1000,
  };
}

/**
 * A valid `occurredAt` as Postgres is to be given it: with at most six fractional digits (the
 * ones past the sixth dropped, as parseOccurredAt drops them; Postgres would round them).
 * Unchanged when it has six or fewer, which is nearly always: one length check.
 */
export function occurredAtToMicros(text: string): string {
  // Shortest form with seven digits: 'YYYY-MM-DDTHH:MM:SS.fffffffZ', 28 characters.
  if (text.length < 28) return text;
  const zoneStart = text.endsWith('Z') ? text.length - 1 : text.length - 6;
  const fractionEnd = 20 + KEPT_FRACTION_DIGITS;
  return zoneStart > fractionEnd && text.charCodeAt(19) === 46 /* . */ ? text.slice(0, fractionEnd) + text.slice(zoneStart) : text;
}

/** True for 1..maxCodePoints code points with no U+0000 and no unpaired surrogate. */
export function isStorableText(text: string, maxCodePoints: number): boolean {
  if (text.length === 0 || text.length > maxCodePoints * 2) return false;
  let codePoints = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0) return false;
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1); // NaN past the end, which fails the test below
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return false;
    }
    codePoints++;
  }
  return codePoints <= maxCodePoints;
}

/** A short, bounded rendering of a rejected value for error details. */
export function previewValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string':
      return value.length > 24 ? `${JSON.stringify(value.slice(0, 24))}…` : JSON.stringify(value);
    case 'number':
    case 'boolean':
      return String(value);
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

/** zod error option whose message says what the field must be and what it got instead. */
function expecting(what: string) {
  return {
    error: (issue: { input?: unknown }) =>
      issue.input === undefined ? `missing, expected ${what}` : `expected ${what}, got ${previewValue(issue.input)}`,
  };
}

const ID_RULE = 'id (1-64 chars of [A-Za-z0-9_.-])';
const id = z.string(expecting(ID_RULE)).regex(ID_PATTERN, expecting(ID_RULE));

/** An eventId's most code points (CONTRACT.md: 1-64 chars). */
export const EVENT_ID_MAX_CODE_POINTS = 64;

const text = (maxCodePoints: number, what: string) =>
  z
    .string(expecting(what))
    .refine((value) => isStorableText(value, maxCodePoints), expecting(what))
    .meta({ minLength: 1, maxLength: maxCodePoints });

const OCCURRED_AT_RULE = 'ISO-8601 timestamp with zone, e.g. 2026-11-22T10:00:00.000Z (seconds required, at most 9 fractional digits)';
const occurredAt = z
  .string(expecting(OCCURRED_AT_RULE))
  .regex(OCCURRED_AT_PATTERN, { ...expecting(OCCURRED_AT_RULE), abort: true }) // one complaint, not two
  .refine((value) => parseOccurredAt(value) !== undefined, expecting('a real calendar date and time, offset at most ±14:59'))
  .meta({ format: 'date-time' });

const boundedInt = (max: number) => {
  const rule = expecting(`integer 0-${max}`);
  return z.int(rule).min(0, rule).max(max, rule);
};

/** The payload object: strict, so unknown extra fields are rejected (the contract says so). */
const payloadOf = <Shape extends z.core.$ZodLooseShape>(shape: Shape) =>
  z.strictObject(shape, expecting('an object'));

export const PAYLOAD_SCHEMAS = {
  'player.joined': payloadOf({
    displayName: text(80, 'display name (1-80 chars)').optional(),
    teamId: id.optional(),
  }),
  'clue.found': payloadOf({ clueId: id, points: boundedInt(1000) }),
  'hint.used': payloadOf({ clueId: id, penalty: boundedInt(1000) }),
  'treasure.claimed': payloadOf({ treasureId: id, points: boundedInt(10_000) }),
  'player.left': payloadOf({}),
} as const;

const EVENT_DESCRIPTIONS: Record<EventType, string> = {
  'player.joined': 'Registers the player in the hunt and makes them active.',
  'clue.found': 'The player found a clue; only the earliest find of a clue by a player scores.',
  'hint.used': 'The player used a hint for a clue; the earliest such event per clue costs the penalty.',
  'treasure.claimed': 'The player claims a treasure; the earliest claim per treasure and hunt wins.',
  'player.left': 'Marks the player inactive; score stays and later events still count.',
};

function envelopeOf<T extends EventType>(type: T) {
  return z
    .strictObject({
      eventId: text(EVENT_ID_MAX_CODE_POINTS, 'event id (1-64 chars)').meta({
        description: 'Globally unique per logical event: the idempotency key. A second record with it has no effect.',
      }),
      type: z.literal(type, expecting(JSON.stringify(type))),
      schemaVersion: z.literal(1, expecting('1')).meta({ type: 'integer' }),
      huntId: id.meta({ description: 'The hunt; also the Kafka message key (UTF-8).' }),
      playerId: id,
      occurredAt: occurredAt.meta({
        description: 'Event time with zone, at most 9 fractional digits (kept to the microsecond: digits past the sixth are dropped). Over 5 minutes ahead of the consumer clock is rejected.',
      }),
      payload: PAYLOAD_SCHEMAS[type],
    })
    .meta({ title: type, description: EVENT_DESCRIPTIONS[type] });
}

/** One strict schema per event type, envelope included; dispatch on `type` to pick one. */
export const EVENT_SCHEMAS = {
  'player.joined': envelopeOf('player.joined'),
  'clue.found': envelopeOf('clue.found'),
  'hint.used': envelopeOf('hint.used'),
  'treasure.claimed': envelopeOf('treasure.claimed'),
  'player.left': envelopeOf('player.left'),
} as const;

export const HuntEventSchema = z
  .discriminatedUnion('type', [
    EVENT_SCHEMAS['player.joined'],
    EVENT_SCHEMAS['clue.found'],
    EVENT_SCHEMAS['hint.used'],
    EVENT_SCHEMAS['treasure.claimed'],
    EVENT_SCHEMAS['player.left'],
  ])
  .meta({ title: 'HuntEvent', description: 'Any Treasure Hunt Engine event, schemaVersion 1.' });

export type PlayerJoinedEvent = z.infer<(typeof EVENT_SCHEMAS)['player.joined']>;
export type ClueFoundEvent = z.infer<(typeof EVENT_SCHEMAS)['clue.found']>;
export type HintUsedEvent = z.infer<(typeof EVENT_SCHEMAS)['hint.used']>;
export type TreasureClaimedEvent = z.infer<(typeof EVENT_SCHEMAS)['treasure.claimed']>;
export type PlayerLeftEvent = z.infer<(typeof EVENT_SCHEMAS)['player.left']>;
export type HuntEvent = z.infer<typeof HuntEventSchema>;
export type EventOfType<T extends EventType> = Extract<HuntEvent, { type: T }>;
export type PayloadOf<T extends EventType> = EventOfType<T>['payload'];

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && Object.hasOwn(EVENT_SCHEMAS, value);
}
