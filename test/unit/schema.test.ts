import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EVENT_SCHEMAS,
  EVENT_TYPES,
  HuntEventSchema,
  isEventType,
  isStorableText,
  occurredAtToMicros,
  parseOccurredAt,
} from '../../src/events/schema';
import { huntEventArb } from '../helpers/arbitraries';
import { clueFound, hintUsed, joined, left, treasureClaimed } from '../helpers/event-builders';

const accepts = (value: unknown) => HuntEventSchema.safeParse(value).success;
const base = clueFound({ eventId: 'e1' });
const withPayload = (payload: unknown) => ({ ...base, payload });

describe('envelope', () => {
  it('accepts one valid event of every type', () => {
    const examples = [
      joined({ eventId: 'a', displayName: 'Ada', teamId: 'red' }),
      joined({ eventId: 'b' }),
      clueFound({ eventId: 'c' }),
      hintUsed({ eventId: 'd' }),
      treasureClaimed({ eventId: 'e' }),
      left({ eventId: 'f' }),
    ];
    for (const event of examples) expect(HuntEventSchema.parse(event)).toEqual(event);
    expect(new Set(examples.map((e) => e.type))).toEqual(new Set(EVENT_TYPES));
  });

  it('accepts every generated event', () => {
    fc.assert(fc.property(huntEventArb(), (event) => accepts(event)));
  });

  it('rejects unknown top-level fields, like unknown payload fields', () => {
    expect(accepts({ ...base, teamId: 'red' })).toBe(false);
    expect(accepts(withPayload({ clueId: 'c1', points: 1, bonus: 2 }))).toBe(false);
  });

  it('requires every envelope field', () => {
    for (const field of ['eventId', 'type', 'schemaVersion', 'huntId', 'playerId', 'occurredAt', 'payload']) {
      const { [field]: _dropped, ...rest } = base as Record<string, unknown>;
      expect(accepts(rest), field).toBe(false);
    }
  });

  it('accepts only schemaVersion 1 as a number', () => {
    expect(accepts({ ...base, schemaVersion: 2 })).toBe(false);
    expect(accepts({ ...base, schemaVersion: '1' })).toBe(false);
    expect(accepts({ ...base, schemaVersion: 1.0 })).toBe(true);
  });

  it('limits hunt and player ids to 1-64 chars of [A-Za-z0-9_.-]', () => {
    for (const field of ['huntId', 'playerId'] as const) {
      expect(accepts({ ...base, [field]: 'A'.repeat(64) })).toBe(true);
      expect(accepts({ ...base, [field]: 'aZ09_.-' })).toBe(true);
      for (const bad of ['A'.repeat(65), '', 'a b', 'a/b', 'é', 'a\n', 7]) {
        expect(accepts({ ...base, [field]: bad }), `${field}=${String(bad)}`).toBe(false);
      }
    }
  });

  it('takes any eventId of 1-64 code points that Postgres and UTF-8 can store', () => {
    expect(accepts({ ...base, eventId: 'x'.repeat(64) })).toBe(true);
    expect(accepts({ ...base, eventId: '😀'.repeat(64) })).toBe(true); // 128 UTF-16 units
    expect(accepts({ ...base, eventId: 'order #1 / café' })).toBe(true);
    for (const bad of ['', 'x'.repeat(65), '😀'.repeat(65), 'a\u0000b', 'a\ud800', '\udc00a', 42]) {
      expect(accepts({ ...base, eventId: bad }), JSON.stringify(bad)).toBe(false);
    }
  });

  it('isEventType ignores Object.prototype names', () => {
    for (const type of EVENT_TYPES) expect(isEventType(type)).toBe(true);
    for (const bad of ['constructor', '__proto__', 'toString', 'Clue.found', '', undefined, 1]) {
      expect(isEventType(bad)).toBe(false);
    }
  });
});

describe('payloads', () => {
  it('bounds clue points and hint penalties to integers 0-1000', () => {
    for (const [type, field] of [['clue.found', 'points'], ['hint.used', 'penalty']] as const) {
      const schema = EVENT_SCHEMAS[type];
      const event = type === 'clue.found' ? base : hintUsed({ eventId: 'e1' });
      const check = (value: unknown) => schema.safeParse({ ...event, payload: { clueId: 'c1', [field]: value } }).success;
      expect([0, 1000].map(check)).toEqual([true, true]);
      expect([-1, 1001, 1.5, '5', null, Number.NaN, 1e300].map(check)).toEqual(Array(7).fill(false));
    }
  });

  it('bounds treasure points to integers 0-10000', () => {
    const check = (points: unknown) =>
      accepts({ ...treasureClaimed({ eventId: 'e1' }), payload: { treasureId: 't1', points } });
    expect([0, 10_000].map(check)).toEqual([true, true]);
    expect([-1, 10_001, 2.5].map(check)).toEqual([false, false, false]);
  });

  it('requires clueId / treasureId as ids', () => {
    expect(accepts(withPayload({ points: 1 }))).toBe(false);
    expect(accepts(withPayload({ clueId: 'c'.repeat(65), points: 1 }))).toBe(false);
    expect(accepts(withPayload({ clueId: 'c'.repeat(64), points: 1 }))).toBe(true);
    expect(accepts({ ...treasureClaimed({ eventId: 'e1' }), payload: { treasureId: 'no way', points: 1 } })).toBe(false);
  });

  it('player.joined: optional displayName of 1-80 chars and optional teamId', () => {
    const check = (payload: unknown) => accepts({ ...joined({ eventId: 'e1' }), payload });
    expect(check({})).toBe(true);
    expect(check({ displayName: 'n'.repeat(80), teamId: 'blue' })).toBe(true);
    expect(check({ displayName: '🧭'.repeat(80) })).toBe(true);
    expect(check({ displayName: '' })).toBe(false);
    expect(check({ displayName: 'n'.repeat(81) })).toBe(false);
    expect(check({ displayName: 'a\u0000' })).toBe(false);
    expect(check({ displayName: null })).toBe(false);
    expect(check({ teamId: 'two words' })).toBe(false);
    expect(check({ team: 'red' })).toBe(false);
  });

  it('player.left: only the empty object', () => {
    const check = (payload: unknown) => accepts({ ...left({ eventId: 'e1' }), payload });
    expect(check({})).toBe(true);
    expect([{ reason: 'bye' }, null, [], 'x'].map(check)).toEqual([false, false, false, false]);
  });
});

describe('occurredAt', () => {
  const check = (occurredAt: unknown) => accepts({ ...base, occurredAt });

  it('accepts ISO-8601 with Z or an offset and 0-9 fractional digits (.NET writes 7, Go 9)', () => {
    for (const ok of [
      '2026-11-22T10:00:00Z',
      '2026-11-22T10:00:00.1234567+00:00',
      '2026-11-22T10:00:00.123456789Z',
      '2026-11-22T10:00:00.1Z',
      '2026-11-22T10:00:00.000Z',
      '2026-11-22T10:00:00.123456Z',
      '2026-11-22T12:00:00+02:00',
      '2026-11-22T04:30:00.5-05:30',
      '2026-11-22T10:00:00-00:00',
      '2026-11-22T23:59:59+14:00',
      '2024-02-29T00:00:00Z',
      '2000-02-29T00:00:00Z',
      '0001-01-01T00:00:00Z',
    ]) {
      expect(check(ok), ok).toBe(true);
    }
  });

  it('rejects missing zones, other separators, too much precision and impossible dates', () => {
    for (const bad of [
      '2026-11-22T10:00:00',
      '2026-11-22T10:00:00.000',
      '2026-11-22 10:00:00Z',
      '2026-11-22t10:00:00z',
      '2026-11-22T10:00Z',
      '2026-11-22',
      '2026-11-22T10:00:00.1234567890Z',
      '2026-11-22T10:00:00.Z',
      '2026-11-22T10:00:00+0200',
      '2026-11-22T10:00:00+02',
      '2026-11-22T10:00:00+15:00',
      '2026-11-22T10:00:00+02:60',
      '2026-02-29T10:00:00Z',
      '1900-02-29T10:00:00Z',
      '2026-04-31T10:00:00Z',
      '2026-13-01T10:00:00Z',
      '2026-00-01T10:00:00Z',
      '2026-11-00T10:00:00Z',
      '2026-11-22T24:00:00Z',
      '2026-11-22T10:60:00Z',
      '2026-11-22T23:59:60Z',
      '0000-01-01T00:00:00Z',
      '+02026-11-22T10:00:00Z',
      1795341600000,
    ]) {
      expect(check(bad), String(bad)).toBe(false);
    }
  });

  it('parses to the same instant whatever the offset', () => {
    const utc = parseOccurredAt('2026-11-22T10:00:00.000Z');
    expect(parseOccurredAt('2026-11-22T12:00:00+02:00')).toEqual(utc);
    expect(parseOccurredAt('2026-11-22T04:30:00.000000-05:30')).toEqual(utc);
    expect(parseOccurredAt('2026-11-23T00:00:00+14:00')).toEqual(utc);
    expect(utc).toEqual({ epochMs: Date.UTC(2026, 10, 22, 10), micros: 0 });
  });

  it('keeps microseconds beyond the millisecond', () => {
    expect(parseOccurredAt('2026-11-22T10:00:00.123456Z')).toEqual({ epochMs: Date.UTC(2026, 10, 22, 10) + 123, micros: 456 });
    expect(parseOccurredAt('2026-11-22T10:00:00.1Z')).toEqual({ epochMs: Date.UTC(2026, 10, 22, 10) + 100, micros: 0 });
    expect(parseOccurredAt('2026-11-22T10:00:00.00005Z')).toEqual({ epochMs: Date.UTC(2026, 10, 22, 10), micros: 50 });
  });

  it('drops the digits past the sixth, and gives Postgres the same six (it would round them)', () => {
    const sixth = { epochMs: Date.UTC(2026, 10, 22, 10) + 123, micros: 456 };
    expect(parseOccurredAt('2026-11-22T10:00:00.1234569Z')).toEqual(sixth); // not 457
    expect(parseOccurredAt('2026-11-22T10:00:00.123456999+00:00')).toEqual(sixth);
    expect(occurredAtToMicros('2026-11-22T10:00:00.1234569Z')).toBe('2026-11-22T10:00:00.123456Z');
    expect(occurredAtToMicros('2026-11-22T12:00:00.123456999+02:00')).toBe('2026-11-22T12:00:00.123456+02:00');
    for (const unchanged of ['2026-11-22T10:00:00.123456Z', '2026-11-22T10:00:00.1Z', '2026-11-22T10:00:00Z', '2026-11-22T10:00:00+14:00', '2026-11-22T10:00:00.123456-05:30']) {
      expect(occurredAtToMicros(unchanged)).toBe(unchanged);
    }
    fc.assert(
      fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), fc.stringMatching(/^\d{0,9}$/), (date, fraction) => {
        const text = `${date.toISOString().slice(0, 19)}${fraction ? `.${fraction}` : ''}Z`;
        expect(parseOccurredAt(occurredAtToMicros(text))).toEqual(parseOccurredAt(text));
      }),
    );
  });

  it('agrees with Date for millisecond timestamps, including years before 100 and before 1970', () => {
    const range = { min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true };
    fc.assert(
      fc.property(fc.date(range), (date) => {
        expect(parseOccurredAt(date.toISOString())).toEqual({ epochMs: date.getTime(), micros: 0 });
      }),
    );
  });
});

describe('isStorableText', () => {
  it('counts code points and refuses NUL and unpaired surrogates', () => {
    expect(isStorableText('😀😀', 2)).toBe(true);
    expect(isStorableText('😀😀😀', 2)).toBe(false);
    expect(isStorableText('', 2)).toBe(false);
    expect(isStorableText('\u0000', 2)).toBe(false);
    expect(isStorableText('\ud83d', 2)).toBe(false);
    expect(isStorableText('\ude00\ud83d', 2)).toBe(false);
  });
});
