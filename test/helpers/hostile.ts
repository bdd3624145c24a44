/**
 * A seeded corpus of hostile Kafka records, each with the outcome the contract demands:
 * rejected with a given reason, or accepted (hostile-looking but valid, such as ids named
 * like Object.prototype members). Kinds cover bytes and encodings, JSON shapes, every
 * field's type and bounds, dates, sizes on both sides of 64 KiB up to the topic's limit,
 * deep nesting, prototype-like keys and ids, NUL, lone surrogates, control characters,
 * schema-registry framing and bursts of large rejects of one hunt.
 *
 * Valid events are in event-time order per hunt, so the hot path's result must equal the
 * reference fold exactly.
 */
import type { HuntEvent } from '../../src/events/schema';
import { MAX_EVENT_BYTES, type RejectReason } from '../../src/events/validate';
import { seededRandom } from '../../src/demo/traffic';

export interface HostileRecord {
  kind: string;
  key: Buffer | null;
  value: Buffer | null;
  /** The reason it must be rejected for, or 'accepted' (then `event` is what must be applied). */
  expect: RejectReason | 'accepted';
  event?: HuntEvent;
}

type Template = (ctx: Context) => Omit<HostileRecord, 'kind'>;

interface Context {
  i: number;
  random: () => number;
  huntId: string;
  /** A valid event for this hunt, next in event-time order. */
  valid: (overrides?: Partial<HuntEvent> & { payload?: unknown }) => HuntEvent;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');
const key = (huntId: string) => Buffer.from(huntId, 'utf8');
const reject = (reason: RejectReason, value: Buffer | null, huntId = 'hostile-h0'): Omit<HostileRecord, 'kind'> => ({ key: key(huntId), value, expect: reason });
/** Replaces one field of a valid event (JSON-level, so any value, even one TypeScript forbids). */
const withField = (event: HuntEvent, field: string, value: unknown) => json({ ...event, [field]: value });
const withPayload = (event: HuntEvent, payload: unknown) => json({ ...event, payload });
const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

/** Kinds whose record is rejected; each returns its record. */
const REJECTS: Record<string, Template> = {
  // Bytes and encodings.
  empty_value: () => reject('invalid_json', Buffer.alloc(0)),
  tombstone: () => reject('invalid_json', null),
  schema_registry_framing: () => reject('invalid_json', Buffer.from([0, 0, 0, 0, 1, 0x7b, 0x7d])),
  schema_registry_framed_event: (c) => reject('invalid_json', Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), json(c.valid())])),
  invalid_utf8: (c) => reject('invalid_json', Buffer.concat([json(c.valid()).subarray(0, 20), Buffer.from([0xff, 0xfe, 0xc0, 0x80])])),
  utf16le: (c) => reject('invalid_json', Buffer.from(`\ufeff${JSON.stringify(c.valid())}`, 'utf16le')),
  utf8_bom: (c) => reject('invalid_json', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json(c.valid())])),
  random_binary: (c) => reject('invalid_json', Buffer.from(Array.from({ length: 1 + Math.floor(c.random() * 300) }, () => Math.floor(c.random() * 256)))),
  nul_bytes_in_json: () => reject('invalid_json', Buffer.from('{"eventId":\u0000"x"}\u0000', 'utf8')),
  truncated_json: (c) => reject('invalid_json', json(c.valid()).subarray(0, 30)),
  control_chars_raw_in_string: (c) => reject('invalid_json', Buffer.from(JSON.stringify(c.valid()).replace('"huntId"', '"hunt\u0001Id\u0007"'))),
  // JSON shapes that are not an event object.
  json_array: (c) => reject('invalid_json', json([c.valid()])),
  json_string: () => reject('invalid_json', json('{"eventId":"x"}')),
  json_number: () => reject('invalid_json', Buffer.from('1e309')),
  json_null: () => reject('invalid_json', Buffer.from('null')),
  deep_nesting_array: () => reject('invalid_json', Buffer.from(nested(30_000))),
  deep_nesting_unterminated: () => reject('invalid_json', Buffer.from('['.repeat(60_000))),
  // The type field.
  type_unknown: (c) => reject('unknown_type', withField(c.valid(), 'type', 'treasure.buried')),
  type_missing: (c) => reject('unknown_type', json({ ...c.valid(), type: undefined })),
  type_number: (c) => reject('unknown_type', withField(c.valid(), 'type', 7)),
  type_proto: (c) => reject('unknown_type', withField(c.valid(), 'type', '__proto__')),
  type_constructor: (c) => reject('unknown_type', withField(c.valid(), 'type', 'constructor')),
  type_to_string: (c) => reject('unknown_type', withField(c.valid(), 'type', 'toString')),
  type_case: (c) => reject('unknown_type', withField(c.valid(), 'type', 'Clue.Found')),
  // Envelope fields: types and bounds.
  event_id_missing: (c) => reject('schema_violation', json({ ...c.valid(), eventId: undefined })),
  event_id_empty: (c) => reject('schema_violation', withField(c.valid(), 'eventId', '')),
  event_id_65: (c) => reject('schema_violation', withField(c.valid(), 'eventId', 'e'.repeat(65))),
  event_id_number: (c) => reject('schema_violation', withField(c.valid(), 'eventId', 12345)),
  event_id_nul: (c) => reject('schema_violation', withField(c.valid(), 'eventId', `nul\u0000id-${c.i}`)),
  event_id_lone_surrogate: (c) => reject('schema_violation', Buffer.from(JSON.stringify(c.valid()).replace(/"eventId":"[^"]*"/, `"eventId":"lone\\ud800-${c.i}"`))),
  hunt_id_bad_chars: (c) => reject('schema_violation', withField(c.valid(), 'huntId', '../etc/passwd')),
  hunt_id_unicode: (c) => reject('schema_violation', withField(c.valid(), 'huntId', 'jagd-ü')),
  player_id_space: (c) => reject('schema_violation', withField(c.valid(), 'playerId', 'drop table')),
  player_id_object: (c) => reject('schema_violation', withField(c.valid(), 'playerId', { $ne: null })),
  schema_version_2: (c) => reject('schema_violation', withField(c.valid(), 'schemaVersion', 2)),
  schema_version_string: (c) => reject('schema_violation', withField(c.valid(), 'schemaVersion', '1')),
  extra_envelope_field: (c) => reject('schema_violation', json({ ...c.valid(), admin: true })),
  proto_key_envelope: (c) => reject('schema_violation', Buffer.from(JSON.stringify(c.valid()).replace(/^\{/, '{"__proto__":{"admin":true},'))),
  // Dates.
  occurred_at_no_zone: (c) => reject('schema_violation', withField(c.valid(), 'occurredAt', '2026-11-22T10:00:00')),
  occurred_at_feb_30: (c) => reject('schema_violation', withField(c.valid(), 'occurredAt', '2026-02-30T10:00:00Z')),
  occurred_at_year_0: (c) => reject('schema_violation', withField(c.valid(), 'occurredAt', '0000-01-01T00:00:00Z')),
  occurred_at_offset_15: (c) => reject('schema_violation', withField(c.valid(), 'occurredAt', '2026-11-22T10:00:00+15:00')),
  occurred_at_10_digits: (c) => reject('schema_violation', withField(c.valid(), 'occurredAt', '2026-11-22T10:00:00.1234567890Z')),
  occurred_at_number: (c) => reject('schema_violation', withField(c.valid(), 'occurredAt', 1_764_000_000_000)),
  occurred_at_far_future: (c) => reject('future_timestamp', withField(c.valid(), 'occurredAt', '9999-12-31T23:59:59Z')),
  occurred_at_hour_ahead: (c) => reject('future_timestamp', withField(c.valid(), 'occurredAt', new Date(Date.now() + 3_600_000).toISOString())),
  // Payloads: types, bounds, unknown and prototype-like keys, deep nesting.
  payload_missing: (c) => reject('schema_violation', json({ ...c.valid(), payload: undefined })),
  payload_array: (c) => reject('schema_violation', withPayload(c.valid(), [])),
  points_negative: (c) => reject('schema_violation', withPayload(c.valid({ type: 'clue.found' }), { clueId: 'c1', points: -1 })),
  points_1001: (c) => reject('schema_violation', withPayload(c.valid({ type: 'clue.found' }), { clueId: 'c1', points: 1001 })),
  points_fraction: (c) => reject('schema_violation', withPayload(c.valid({ type: 'clue.found' }), { clueId: 'c1', points: 1.5 })),
  points_string: (c) => reject('schema_violation', withPayload(c.valid({ type: 'clue.found' }), { clueId: 'c1', points: '10' })),
  points_infinite: (c) => reject('schema_violation', Buffer.from(JSON.stringify(c.valid({ type: 'clue.found' })).replace(/"points":\d+/, '"points":1e309'))),
  treasure_points_10001: (c) => reject('schema_violation', withPayload(c.valid({ type: 'treasure.claimed' }), { treasureId: 't1', points: 10_001 })),
  payload_unknown_keys: (c) => reject('schema_violation', withPayload(c.valid({ type: 'player.left' }), Object.fromEntries(Array.from({ length: 3000 }, (_, k) => [`k${k}`, k])))),
  payload_proto_key: (c) => reject('schema_violation', Buffer.from(JSON.stringify(c.valid({ type: 'player.left' })).replace('"payload":{}', '"payload":{"__proto__":{"polluted":1}}'))),
  payload_constructor_key: (c) => reject('schema_violation', withPayload(c.valid({ type: 'player.left' }), { constructor: { prototype: { x: 1 } } })),
  payload_deep_nesting: (c) => reject('schema_violation', Buffer.from(JSON.stringify(c.valid({ type: 'player.joined' })).replace(/"payload":\{[^}]*\}/, `"payload":{"displayName":${nested(20_000)}}`))),
  display_name_81: (c) => reject('schema_violation', withPayload(c.valid({ type: 'player.joined' }), { displayName: 'n'.repeat(81) })),
  display_name_nul: (c) => reject('schema_violation', withPayload(c.valid({ type: 'player.joined' }), { displayName: 'bad\u0000name' })),
  display_name_lone_surrogate: (c) => reject('schema_violation', Buffer.from(JSON.stringify(c.valid({ type: 'player.joined' })).replace(/"payload":\{[^}]*\}/, '"payload":{"displayName":"x\\udfff"}'))),
  clue_id_bad: (c) => reject('schema_violation', withPayload(c.valid({ type: 'hint.used' }), { clueId: 'clue one', penalty: 1 })),
  // Sizes: just over 64 KiB, and far over, up to what the topic accepts.
  size_64k_plus_1: (c) => reject('too_large', padTo(c.valid(), MAX_EVENT_BYTES + 1)),
  size_900k: (c) => reject('too_large', padTo(c.valid(), 900_000)),
};

/** Hostile-looking but valid: must be applied. */
const ACCEPTS: Record<string, Template> = {
  size_exactly_64k: (c) => accepted(c.valid(), (e) => padTo(e, MAX_EVENT_BYTES)),
  ids_like_prototype: (c) => {
    const names = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf'];
    const name = names[c.i % names.length] as string;
    return accepted(c.valid({ type: 'clue.found', playerId: name, payload: { clueId: name, points: 7 } }));
  },
  event_id_unicode: (c) => accepted(c.valid({ eventId: `ünï-🎉-${c.i}` })),
  // Nanoseconds, as Go writes them: kept to the microsecond by truncation (Postgres would round up).
  occurred_at_9_digits: (c) => {
    const event = c.valid();
    return accepted({ ...event, occurredAt: event.occurredAt.replace('Z', '999999Z') });
  },
  display_name_exotic: (c) => accepted(c.valid({ type: 'player.joined', payload: { displayName: `\u202eRTL \u0301 ${'🎉'.repeat(3)} \u0001\u001f ${c.i}` } })),
  duplicate_json_keys: (c) => {
    const event = c.valid({ type: 'player.left', payload: {} });
    return { key: key(event.huntId), value: Buffer.from(JSON.stringify(event).replace(/^\{/, '{"type":"clue.found",')), expect: 'accepted', event };
  },
  whitespace_around: (c) => accepted(c.valid(), (e) => Buffer.from(`  \n\t${JSON.stringify(e)}\r\n  `)),
  points_exponent: (c) => {
    const event = c.valid({ type: 'clue.found', payload: { clueId: `c-exp-${c.i}`, points: 1000 } });
    return { key: key(event.huntId), value: Buffer.from(JSON.stringify(event).replace('"points":1000', '"points":1e3')), expect: 'accepted', event };
  },
  // Without a key the record lands on any partition: an event whose effect depends on no order.
  null_key: (c) => ({ ...accepted(c.valid({ type: 'clue.found', playerId: `p-nokey-${c.i}`, payload: { clueId: `c-nokey-${c.i}`, points: 3 } })), key: null }),
};

/** Kinds too heavy to repeat often (they still occur): at most this many records each. */
const HEAVY: Record<string, number> = { size_900k: 3, size_exactly_64k: 10, size_64k_plus_1: 30, payload_unknown_keys: 30, deep_nesting_array: 30, payload_deep_nesting: 30 };

function accepted(event: HuntEvent, encode: (e: HuntEvent) => Buffer = json): Omit<HostileRecord, 'kind'> {
  return { key: key(event.huntId), value: encode(event), expect: 'accepted', event };
}

/** The event's JSON padded with trailing spaces to exactly `bytes` (still the same JSON). */
function padTo(event: HuntEvent, bytes: number): Buffer {
  const text = Buffer.from(JSON.stringify(event), 'utf8');
  return Buffer.concat([text, Buffer.alloc(bytes - text.length, 0x20)]);
}

export const HOSTILE_KINDS = Object.keys(REJECTS).length + Object.keys(ACCEPTS).length;

export interface HostileCorpus {
  records: HostileRecord[];
  /** The valid events in the order sent (the fold's input). */
  events: HuntEvent[];
}

/**
 * `hostile` hostile records, cycling through every kind, interleaved with ordinary valid
 * events (one per `validEvery` hostile records), over `hunts` hunts; plus a burst of
 * `burst` records of about 64 KiB rejected for one hunt.
 */
export function hostileCorpus(options: { hostile: number; validEvery: number; hunts: number; burst: number; seed: number }): HostileCorpus {
  const random = seededRandom(options.seed);
  const kinds = [...Object.entries(REJECTS), ...Object.entries(ACCEPTS)];
  let tick = Date.now() - 3_600_000;
  let serial = 0;
  const valid = (huntId: string) => (overrides: Partial<HuntEvent> & { payload?: unknown } = {}): HuntEvent => {
    serial++;
    const type = overrides.type ?? 'clue.found';
    const payload =
      overrides.payload ??
      (type === 'clue.found'
        ? { clueId: `c${serial % 17}`, points: serial % 50 }
        : type === 'hint.used'
          ? { clueId: `c${serial % 17}`, penalty: serial % 9 }
          : type === 'treasure.claimed'
            ? { treasureId: `t${serial % 5}`, points: 100 }
            : type === 'player.joined'
              ? { displayName: `P${serial}` }
              : {});
    return {
      eventId: `hv-${options.seed}-${serial}`,
      schemaVersion: 1,
      huntId,
      playerId: `p${serial % 23}`,
      occurredAt: new Date(tick++).toISOString(),
      ...overrides,
      type,
      payload,
    } as HuntEvent;
  };
  const records: HostileRecord[] = [];
  const made = new Map<string, number>();
  for (let i = 0; i < options.hostile; i++) {
    const huntId = `hostile-h${i % options.hunts}`;
    let [kind, template] = kinds[i % kinds.length] as [string, Template];
    if ((made.get(kind) ?? 0) >= (HEAVY[kind] ?? Infinity)) [kind, template] = ['truncated_json', REJECTS.truncated_json as Template];
    made.set(kind, (made.get(kind) ?? 0) + 1);
    const record = template({ i, random, huntId, valid: valid(huntId) });
    // Rejected records carry their hunt's key, like a real client's would.
    records.push({ kind, ...record, key: record.key === null ? null : key(huntId) });
    if (i % options.validEvery === 0) {
      const event = valid(huntId)({ type: (['player.joined', 'clue.found', 'hint.used', 'treasure.claimed', 'player.left'] as const)[i % 5] });
      records.push({ kind: 'ordinary', key: key(huntId), value: json(event), expect: 'accepted', event });
    }
  }
  const burstHunt = 'hostile-burst';
  for (let i = 0; i < options.burst; i++) {
    records.push({ kind: 'burst_64k_one_hunt', ...reject('too_large', padTo(valid(burstHunt)(), MAX_EVENT_BYTES + 1 + i), burstHunt) });
  }
  return { records, events: records.flatMap((r) => (r.expect === 'accepted' && r.event ? [r.event] : [])) };
}
