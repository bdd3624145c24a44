/**
 * The fast path may only accept what zod accepts, and must give back what zod would: checked
 * over valid events and over events broken in every field, by values of every JSON type,
 * edge numbers and strings, extra and missing keys, and prototype-like keys.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ENVELOPE_FIELDS, fastAccept, PAYLOAD_FIELDS } from '../../src/events/fast-accept';
import { EVENT_SCHEMAS, EVENT_TYPES, parseOccurredAt, PAYLOAD_SCHEMAS } from '../../src/events/schema';
import { huntEventArb } from '../helpers/arbitraries';

const zodVerdict = (value: unknown) => {
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !Object.hasOwn(EVENT_SCHEMAS, type)) return { success: false as const };
  return EVENT_SCHEMAS[type as keyof typeof EVENT_SCHEMAS].safeParse(value);
};

const edgeValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -0, 1, -1, 1.5, 1000, 1001, 10_000, 10_001, 2 ** 53, NaN, Infinity, '', ' ', '1', 'a'.repeat(64), 'a'.repeat(65)),
  fc.constantFrom('x\u0000y', '\ud800', 'ok\udfff', 'é'.repeat(80), 'é'.repeat(81), '2026-02-30T10:00:00Z', '2026-11-22T10:00:00+15:00', 'h1', 'bad id', '__proto__'),
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
);

/** A valid event through JSON (as the hot path sees it), then broken in one place. */
const mutatedArb = fc.tuple(huntEventArb(), fc.nat(), edgeValue, fc.constantFrom('set', 'delete', 'extra', 'proto')).map(([event, pick, value, how]) => {
  const copy = JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
  const payload = copy.payload as Record<string, unknown>;
  const payloadKeys = Object.keys(PAYLOAD_FIELDS[event.type]);
  const envelopeOrPayload = pick % 2 === 0 || payloadKeys.length === 0;
  const target = envelopeOrPayload ? copy : payload;
  const keys = envelopeOrPayload ? [...ENVELOPE_FIELDS] : payloadKeys;
  const key = keys[pick % keys.length] as string;
  if (how === 'set') target[key] = value;
  else if (how === 'delete') delete target[key];
  else if (how === 'extra') target[`x${pick % 3}`] = value;
  else return JSON.parse(JSON.stringify(copy).replace(/^\{/, '{"__proto__":1,')) as unknown;
  return JSON.parse(JSON.stringify(copy)) as unknown;
});

/** Values at and just past every bound the schema has, for any field. */
const BOUNDARY_VALUES: unknown[] = [
  -1, 0, -0, 0.5, 999, 1000, 1001, 9999, 10_000, 10_001, 2 ** 53, '1', null, true, [], {},
  '', 'a', 'a'.repeat(64), 'a'.repeat(65), 'é'.repeat(80), 'é'.repeat(81), '😀'.repeat(64), '😀'.repeat(65),
  'a b', 'a/b', '__proto__', 'x\u0000', '\ud800', 'x\udfff',
  '2026-11-22T10:00:00Z', '2026-11-22T10:00:00.1234567Z', '2026-02-29T10:00:00Z', '2028-02-29T10:00:00Z', '2026-11-22T10:00:00+14:59', '2026-11-22T10:00:00+15:00',
  1, 2,
];

describe('fastAccept', () => {
  it('agrees with zod on every field at and past its bounds', () => {
    const base = fc.sample(huntEventArb(), { numRuns: 50, seed: 3 });
    let checked = 0;
    for (const event of base) {
      const fields: [Record<string, unknown>, string][] = [
        ...ENVELOPE_FIELDS.map((k): [Record<string, unknown>, string] => [{}, k]),
        ...Object.keys(PAYLOAD_FIELDS[event.type]).map((k): [Record<string, unknown>, string] => [{ payload: true }, k]),
      ];
      for (const [where, key] of fields) {
        for (const value of BOUNDARY_VALUES) {
          const copy = JSON.parse(JSON.stringify(event)) as Record<string, unknown>;
          const target = where.payload ? (copy.payload as Record<string, unknown>) : copy;
          target[key] = value;
          const decoded = JSON.parse(JSON.stringify(copy)) as unknown;
          const fast = fastAccept(decoded);
          const zod = zodVerdict(decoded);
          if (fast) expect(zod.success, `${event.type}.${where.payload ? 'payload.' : ''}${key} = ${JSON.stringify(value)}`).toBe(true);
          else if (zod.success) expect.unreachable(`fast path refused a valid ${event.type} with ${key} = ${JSON.stringify(value)}`);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(10_000);
  });

  it('names exactly the fields of the zod schemas', () => {
    for (const type of EVENT_TYPES) {
      expect(Object.keys(EVENT_SCHEMAS[type].shape).sort()).toEqual([...ENVELOPE_FIELDS].sort());
      expect(Object.keys(PAYLOAD_SCHEMAS[type].shape).sort()).toEqual(Object.keys(PAYLOAD_FIELDS[type]).sort());
    }
  });

  it('accepts every valid event, as zod gives it back, with its instant', () => {
    fc.assert(
      fc.property(huntEventArb(), (event) => {
        const decoded = JSON.parse(JSON.stringify(event)) as unknown;
        const fast = fastAccept(decoded);
        const zod = zodVerdict(decoded);
        expect(zod.success).toBe(true);
        expect(fast?.event).toEqual(zod.success ? zod.data : undefined);
        expect(fast?.instant).toEqual(parseOccurredAt(event.occurredAt));
      }),
      { numRuns: 2000 },
    );
  });

  it('never accepts what zod rejects, nor gives back anything else than zod would', () => {
    fc.assert(
      fc.property(mutatedArb, (value) => {
        const fast = fastAccept(value);
        if (fast === undefined) return;
        const zod = zodVerdict(value);
        expect(zod.success).toBe(true);
        expect(fast.event).toEqual(zod.success ? zod.data : undefined);
      }),
      { numRuns: 20_000 },
    );
  });
});
