import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  classifyDecoded,
  classifyRecord,
  FUTURE_TOLERANCE_MS,
  MAX_EVENT_BYTES,
  type RecordClassification,
} from '../../src/events/validate';
import { compareByteOrder, compareEventTime } from '../../src/rules/order';
import { huntEventArb } from '../helpers/arbitraries';
import { clueFound, recordOf, T0_MS } from '../helpers/event-builders';

const NOW = new Date(T0_MS);
const valid = clueFound({ eventId: 'e1' });
const classify = (value: unknown) => classifyRecord(recordOf(value), NOW);

function rejection(result: RecordClassification): { reason: string; detail: string } {
  if (result.ok) throw new Error(`expected a rejection, got ${JSON.stringify(result.event)}`);
  return { reason: result.reason, detail: result.detail };
}

/** A record of exactly `bytes` bytes holding `value` (JSON whitespace pads it). */
function paddedRecord(value: unknown, bytes: number): Buffer {
  const json = JSON.stringify(value);
  return Buffer.from(json + ' '.repeat(bytes - Buffer.byteLength(json)), 'utf8');
}

describe('classifyRecord: accepted', () => {
  it('returns the event and its instant', () => {
    const event = { ...valid, occurredAt: '2026-11-22T11:00:00.000250+01:00' };
    expect(classify(event)).toEqual({ ok: true, event, instant: { epochMs: T0_MS, micros: 250 } });
  });

  it('accepts every generated event and returns it unchanged', () => {
    fc.assert(
      fc.property(huntEventArb(), (event) => {
        const result = classifyRecord(recordOf(event), NOW);
        expect(result.ok && result.event).toEqual(event);
      }),
    );
  });
});

describe('classifyRecord: each reason', () => {
  it('too_large: over 64 KiB; exactly 64 KiB is fine', () => {
    expect(MAX_EVENT_BYTES).toBe(65_536);
    expect(classifyRecord(paddedRecord(valid, MAX_EVENT_BYTES), NOW).ok).toBe(true);
    const result = rejection(classifyRecord(paddedRecord(valid, MAX_EVENT_BYTES + 1), NOW));
    expect(result).toEqual({ reason: 'too_large', detail: 'value is 65537 bytes; the limit is 65536' });
  });

  it('invalid_json: tombstones, bad UTF-8, syntax errors, empty values', () => {
    expect(rejection(classifyRecord(null, NOW))).toEqual({
      reason: 'invalid_json',
      detail: expect.stringContaining('tombstone'),
    });
    expect(rejection(classifyRecord(Buffer.from([0x7b, 0xff, 0x7d]), NOW)).detail).toMatch(/UTF-8/);
    // An overlong encoding of '"' must not sneak through as a quote.
    expect(rejection(classifyRecord(Buffer.from([0xc0, 0xa2]), NOW)).reason).toBe('invalid_json');
    expect(rejection(classifyRecord(Buffer.from('{"type": "clue.found",'), NOW)).reason).toBe('invalid_json');
    expect(rejection(classifyRecord(Buffer.alloc(0), NOW)).reason).toBe('invalid_json');
    expect(rejection(classifyRecord(Buffer.from('\ufeff{}'), NOW)).reason).toBe('invalid_json');
  });

  it('invalid_json: JSON that is not an object', () => {
    for (const value of [[valid], 'clue.found', 42, null, true]) {
      expect(rejection(classify(value)).reason, JSON.stringify(value)).toBe('invalid_json');
    }
    expect(rejection(classify([valid])).detail).toBe('expected a JSON object, got an array');
  });

  it('unknown_type: missing, not a string, or not one of the five', () => {
    const { type: _type, ...untyped } = valid;
    expect(rejection(classify(untyped))).toEqual({ reason: 'unknown_type', detail: expect.stringMatching(/^type: missing; expected one of player\.joined, /) });
    expect(rejection(classify({ ...valid, type: 5 })).reason).toBe('unknown_type');
    expect(rejection(classify({ ...valid, type: 'clue.lost' })).detail).toMatch(/^type: "clue\.lost" is not a known type/);
    for (const type of ['constructor', '__proto__', 'toString', 'CLUE.FOUND', null]) {
      expect(rejection(classify({ ...valid, type })).reason, String(type)).toBe('unknown_type');
    }
  });

  it('schema_violation: the detail names the field path and the problem', () => {
    const detailOf = (value: unknown) => {
      const result = rejection(classify(value));
      expect(result.reason).toBe('schema_violation');
      return result.detail;
    };
    expect(detailOf({ ...valid, payload: { clueId: 'c1', points: 1001 } })).toBe('payload.points: expected integer 0-1000, got 1001');
    expect(detailOf({ ...valid, payload: { clueId: 'c1', points: 2.5 } })).toBe('payload.points: expected integer 0-1000, got 2.5');
    expect(detailOf({ ...valid, payload: { clueId: 'c1' } })).toBe('payload.points: missing, expected integer 0-1000');
    expect(detailOf({ ...valid, payload: { clueId: 'c1', points: 1, bonus: 1 } })).toBe('payload: unknown field "bonus"');
    expect(detailOf({ ...valid, extra: 1, more: 2 })).toBe('(event): unknown fields "extra", "more"');
    expect(detailOf({ ...valid, huntId: 'h 1' })).toBe('huntId: expected id (1-64 chars of [A-Za-z0-9_.-]), got "h 1"');
    expect(detailOf({ ...valid, schemaVersion: 2 })).toBe('schemaVersion: expected 1, got 2');
    expect(detailOf({ ...valid, payload: null })).toBe('payload: expected an object, got null');
    expect(detailOf({ ...valid, occurredAt: '2026-11-22T10:00:00' })).toBe(
      'occurredAt: expected ISO-8601 timestamp with zone, e.g. 2026-11-22T10:00:00.000Z (seconds required, at most 9 fractional digits), got "2026-11-22T10:00:00"',
    );
    expect(detailOf({ ...valid, occurredAt: '2026-02-30T10:00:00Z' })).toBe(
      'occurredAt: expected a real calendar date and time, offset at most ±14:59, got "2026-02-30T10:00:00Z"',
    );
  });

  it('schema_violation: several problems are listed, long values are cut short', () => {
    const detail = rejection(classify({ ...valid, huntId: 'x'.repeat(1000), playerId: '', payload: {} })).detail;
    expect(detail).toContain('huntId: expected id (1-64 chars of [A-Za-z0-9_.-]), got "xxxxxxxxxxxxxxxxxxxxxxxx"…');
    expect(detail).toContain('playerId: ');
    expect(detail).toContain('payload.clueId: missing');
    expect(detail.length).toBeLessThan(600);
  });

  it('future_timestamp: more than 5 minutes after the consumer clock, by instant', () => {
    expect(FUTURE_TOLERANCE_MS).toBe(300_000);
    const at = (occurredAt: string) => classify({ ...valid, occurredAt });
    expect(at('2026-11-22T10:05:00.000Z').ok).toBe(true);
    expect(at('2026-11-22T12:05:00.000000+02:00').ok).toBe(true);
    expect(at('2026-11-22T05:05:00-05:00').ok).toBe(true);
    expect(rejection(at('2026-11-22T10:05:00.001Z')).reason).toBe('future_timestamp');
    expect(rejection(at('2026-11-22T10:05:00.000001Z')).reason).toBe('future_timestamp');
    expect(rejection(at('2026-11-22T12:05:00.001+02:00')).detail).toBe(
      'occurredAt: 2026-11-22T12:05:00.001+02:00 is more than 300s after the consumer clock 2026-11-22T10:00:00.000Z',
    );
    expect(at('1999-01-01T00:00:00Z').ok).toBe(true); // late events are fine
  });
});

describe('classifyRecord: precedence (the first failing check names the reason)', () => {
  const future = '2027-01-01T00:00:00Z';
  const cases: Array<[string, Buffer | null, string]> = [
    ['oversize invalid JSON', Buffer.alloc(MAX_EVENT_BYTES + 1, '{'), 'too_large'],
    ['oversize JSON with unknown type', paddedRecord({ ...valid, type: 'nope' }, MAX_EVENT_BYTES + 10), 'too_large'],
    ['oversize future event', paddedRecord({ ...valid, occurredAt: future }, MAX_EVENT_BYTES + 1), 'too_large'],
    ['invalid JSON mentioning an unknown type', Buffer.from('{"type":"nope"'), 'invalid_json'],
    ['unknown type with schema violations', recordOf({ type: 'nope', points: -1 }), 'unknown_type'],
    ['unknown type in the future', recordOf({ ...valid, type: 'nope', occurredAt: future }), 'unknown_type'],
    ['schema violation in the future', recordOf({ ...valid, occurredAt: future, huntId: '' }), 'schema_violation'],
    ['valid but in the future', recordOf({ ...valid, occurredAt: future }), 'future_timestamp'],
  ];
  it.each(cases)('%s → %s', (_name, value, reason) => {
    expect(rejection(classifyRecord(value, NOW)).reason).toBe(reason);
  });
});

describe('classifyRecord: robustness', () => {
  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        classifyRecord(Buffer.from(bytes), NOW);
      }),
    );
  });

  it('never throws on arbitrary JSON, nor on valid events with one field replaced', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        classifyRecord(recordOf(value), NOW);
      }),
    );
    const fields = ['eventId', 'type', 'schemaVersion', 'huntId', 'playerId', 'occurredAt', 'payload'];
    fc.assert(
      fc.property(huntEventArb(), fc.constantFrom(...fields), fc.jsonValue(), (event, field, value) => {
        const result = classifyDecoded({ ...event, [field]: value }, NOW);
        if (!result.ok) expect(result.detail.length).toBeGreaterThan(0);
      }),
    );
  });

  it('survives deeply nested JSON', () => {
    const depth = 30_000;
    expect(classifyRecord(Buffer.from('['.repeat(depth) + ']'.repeat(depth)), NOW).ok).toBe(false);
  });
});

describe('ordering', () => {
  it('compareByteOrder agrees with Buffer.compare on UTF-8 bytes', () => {
    const sign = (n: number) => Math.sign(n);
    expect(sign(compareByteOrder('\uFFFD', '😀'))).toBe(-1); // JS '<' says the opposite
    expect('\uFFFD' < '😀').toBe(false);
    expect(sign(compareByteOrder('a', 'ab'))).toBe(-1);
    expect(sign(compareByteOrder('B', 'a'))).toBe(-1);
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(sign(compareByteOrder(a, b))).toBe(Buffer.compare(Buffer.from(a), Buffer.from(b)));
      }),
      { numRuns: 1000 },
    );
  });

  it('compareEventTime: instant first, whatever the offset, then eventId bytes', () => {
    const e = (eventId: string, occurredAt: string) => ({ eventId, occurredAt });
    expect(compareEventTime(e('z', '2026-11-22T10:00:00Z'), e('a', '2026-11-22T10:00:00.000001Z'))).toBeLessThan(0);
    // 09:30Z is earlier than 10:00Z even though the string with +02:00 sorts later as text.
    expect(compareEventTime(e('a', '2026-11-22T11:30:00+02:00'), e('b', '2026-11-22T10:00:00Z'))).toBeLessThan(0);
    expect(compareEventTime(e('b', '2026-11-22T12:00:00+02:00'), e('a', '2026-11-22T10:00:00Z'))).toBeGreaterThan(0);
    expect(compareEventTime(e('\uFFFD', '2026-11-22T10:00:00Z'), e('😀', '2026-11-22T10:00:00.000Z'))).toBeLessThan(0);
    expect(compareEventTime(e('a', '2026-11-22T10:00:00Z'), e('a', '2026-11-22T12:00:00+02:00'))).toBe(0);
  });

  it('compareEventTime throws on an invalid timestamp instead of guessing', () => {
    expect(() => compareEventTime({ eventId: 'a', occurredAt: 'yesterday' }, { eventId: 'b', occurredAt: '2026-11-22T10:00:00Z' })).toThrow(/event a: invalid occurredAt/);
  });
});
