/**
 * A fast path in front of the zod schemas, for the hot path's common case: a well-formed
 * event. It only ever says "certainly valid" (and hands back the decoded object itself,
 * with its instant), or "not sure": anything it does not recognize, it leaves to zod, which
 * stays the one definition of the schema and the source of every rejection message.
 *
 * So it must never accept what zod rejects; a property test checks it against zod over
 * random and mutated events. The field tables below must name exactly the fields of zod's
 * shapes (a unit test compares them), so a field added to the schema and not here makes the
 * fast path step aside, not accept blindly.
 */
import { ID_PATTERN } from '../constants';
import { EVENT_TYPES, isStorableText, parseOccurredAt, type EventInstant, type EventType, type HuntEvent } from './schema';

type FieldCheck = (value: unknown) => boolean;

const isId: FieldCheck = (v) => typeof v === 'string' && ID_PATTERN.test(v);
const isText = (max: number): FieldCheck => (v) => typeof v === 'string' && isStorableText(v, max);
const isIntIn = (max: number): FieldCheck => (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

/** Per type: every payload field, and whether it must be present. */
export const PAYLOAD_FIELDS: Record<EventType, Record<string, { check: FieldCheck; required: boolean }>> = {
  'player.joined': { displayName: { check: isText(80), required: false }, teamId: { check: isId, required: false } },
  'clue.found': { clueId: { check: isId, required: true }, points: { check: isIntIn(1000), required: true } },
  'hint.used': { clueId: { check: isId, required: true }, penalty: { check: isIntIn(1000), required: true } },
  'treasure.claimed': { treasureId: { check: isId, required: true }, points: { check: isIntIn(10_000), required: true } },
  'player.left': {},
};

export const ENVELOPE_FIELDS = ['eventId', 'type', 'schemaVersion', 'huntId', 'playerId', 'occurredAt', 'payload'] as const;

const TYPES = new Set<string>(EVENT_TYPES);

/** The event and its instant when `value` is certainly a valid event; undefined when unsure. */
export function fastAccept(value: unknown): { event: HuntEvent; instant: EventInstant } | undefined {
  if (!isPlainObject(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (!hasExactly(v, ENVELOPE_FIELDS)) return undefined;
  const type = v.type;
  if (typeof type !== 'string' || !TYPES.has(type)) return undefined;
  if (v.schemaVersion !== 1 || !isId(v.huntId) || !isId(v.playerId) || typeof v.eventId !== 'string' || !isStorableText(v.eventId, 64)) return undefined;
  if (typeof v.occurredAt !== 'string') return undefined;
  const instant = parseOccurredAt(v.occurredAt);
  if (!instant) return undefined;
  const payload = v.payload;
  if (!isPlainObject(payload)) return undefined;
  const fields = PAYLOAD_FIELDS[type as EventType];
  // for-in visits every own enumerable key (all Object.keys would list) and refuses inherited
  // ones, so each payload key is checked here and no count against Object.keys is needed.
  for (const key in payload as object) {
    const field = Object.hasOwn(fields, key) ? fields[key] : undefined;
    if (!field || !Object.hasOwn(payload as object, key) || !field.check((payload as Record<string, unknown>)[key])) return undefined;
  }
  for (const [key, field] of Object.entries(fields)) if (field.required && !Object.hasOwn(payload as object, key)) return undefined;
  return { event: v as HuntEvent, instant };
}

function isPlainObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

/** Exactly these own keys, no more (JSON.parse gives own, enumerable string keys only). */
function hasExactly(v: Record<string, unknown>, keys: readonly string[]): boolean {
  let n = 0;
  for (const key in v) {
    if (!Object.hasOwn(v, key)) return false;
    n++;
  }
  if (n !== keys.length) return false;
  for (const key of keys) if (!Object.hasOwn(v, key)) return false;
  return true;
}
