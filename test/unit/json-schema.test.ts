import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildJsonSchemas, COMBINED_SCHEMA_FILE, writeJsonSchemas, type JsonSchema } from '../../src/events/json-schema';
import { EVENT_TYPES } from '../../src/events/schema';
import { classifyDecoded } from '../../src/events/validate';
import { huntEventArb } from '../helpers/arbitraries';
import { clueFound, hintUsed, joined, left, T0_MS, treasureClaimed } from '../helpers/event-builders';

/**
 * A validator for exactly the keywords the generated schemas use (no JSON Schema validator
 * is a direct dependency). An unknown keyword fails the test, so a zod upgrade that emits
 * something new cannot be silently ignored here. `format` is an annotation in 2020-12.
 */
const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', 'format']);
function conforms(schema: JsonSchema, value: unknown): boolean {
  for (const [keyword, rule] of Object.entries(schema)) {
    if (ANNOTATIONS.has(keyword)) continue;
    const record = value as Record<string, unknown>;
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    const ok = ((): boolean => {
      switch (keyword) {
        case 'oneOf':
          return (rule as JsonSchema[]).filter((s) => conforms(s, value)).length === 1;
        case 'type':
          if (rule === 'object') return isObject;
          if (rule === 'integer') return Number.isInteger(value);
          return typeof value === rule;
        case 'const':
          return value === rule;
        case 'properties':
          return !isObject || Object.entries(rule as Record<string, JsonSchema>).every(([k, s]) => !(k in record) || conforms(s, record[k]));
        case 'required':
          return !isObject || (rule as string[]).every((k) => Object.hasOwn(record, k));
        case 'additionalProperties':
          expect(rule).toBe(false);
          return !isObject || Object.keys(record).every((k) => Object.hasOwn(schema.properties as object, k));
        case 'pattern':
          return typeof value !== 'string' || new RegExp(rule as string, 'u').test(value);
        case 'minLength':
          return typeof value !== 'string' || [...value].length >= (rule as number);
        case 'maxLength':
          return typeof value !== 'string' || [...value].length <= (rule as number);
        case 'minimum':
          return typeof value !== 'number' || value >= (rule as number);
        case 'maximum':
          return typeof value !== 'number' || value <= (rule as number);
        default:
          throw new Error(`the test validator does not know the keyword ${keyword}`);
      }
    })();
    if (!ok) return false;
  }
  return true;
}

const { combined, byType } = buildJsonSchemas();
const examples = [
  joined({ eventId: 'j', displayName: 'Ada Ø 🧭', teamId: 'red' }),
  left({ eventId: 'l' }),
  clueFound({ eventId: 'c', points: 1000 }),
  hintUsed({ eventId: 'h', penalty: 0 }),
  treasureClaimed({ eventId: 't', points: 10_000, occurredAt: '2026-11-22T12:00:00.123456+02:00' }),
];

describe('JSON Schema export', () => {
  it('is draft 2020-12 with an id per document', () => {
    for (const schema of [combined, ...Object.values(byType)]) {
      expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(schema.$id).toMatch(/^urn:treasure-hunt-engine:schema:v1:.+\.schema\.json$/);
    }
    expect((combined.oneOf as JsonSchema[]).map((s) => s.title)).toEqual([...EVENT_TYPES]);
  });

  it('requires every envelope field and closes envelope and payload to extra fields', () => {
    const requiredPayload: Record<string, string[] | undefined> = {
      'player.joined': undefined,
      'player.left': undefined,
      'clue.found': ['clueId', 'points'],
      'hint.used': ['clueId', 'penalty'],
      'treasure.claimed': ['treasureId', 'points'],
    };
    for (const type of EVENT_TYPES) {
      const schema = byType[type] as { required: string[]; additionalProperties: boolean; properties: Record<string, JsonSchema> };
      expect(schema.required).toEqual(['eventId', 'type', 'schemaVersion', 'huntId', 'playerId', 'occurredAt', 'payload']);
      expect(schema.additionalProperties).toBe(false);
      expect(schema.properties.type).toEqual({ type: 'string', const: type });
      expect(schema.properties.schemaVersion).toEqual({ type: 'integer', const: 1 });
      expect(schema.properties.payload?.additionalProperties).toBe(false);
      expect(schema.properties.payload?.required).toEqual(requiredPayload[type]);
    }
  });

  it('accepts a valid example of each type, under its own schema and the combined one', () => {
    for (const event of examples) {
      expect(conforms(combined, event), event.type).toBe(true);
      for (const type of EVENT_TYPES) expect(conforms(byType[type], event)).toBe(type === event.type);
    }
  });

  it('rejects what the contract rejects', () => {
    const base = clueFound({ eventId: 'e' });
    for (const bad of [
      { ...base, extra: 1 },
      { ...base, payload: { clueId: 'c1', points: 1001 } },
      { ...base, payload: { clueId: 'c1', points: 1.5 } },
      { ...base, payload: { clueId: 'c1', points: 1, more: true } },
      { ...base, huntId: 'h 1' },
      { ...base, playerId: 'p'.repeat(65) },
      { ...base, eventId: '' },
      { ...base, eventId: '😀'.repeat(65) },
      { ...base, schemaVersion: 2 },
      { ...base, type: 'clue.lost' },
      { ...base, occurredAt: '2026-11-22T10:00:00' },
      { ...base, occurredAt: '2026-11-22T10:00:00.1234567890Z' },
      { ...left({ eventId: 'l' }), payload: { why: 'bored' } },
    ]) {
      expect(conforms(combined, bad), JSON.stringify(bad)).toBe(false);
    }
  });

  it('accepts every event the consumer accepts', () => {
    const now = new Date(T0_MS);
    const fields = ['eventId', 'huntId', 'playerId', 'occurredAt', 'schemaVersion', 'payload'];
    const candidate = fc.oneof(
      huntEventArb(),
      fc.tuple(huntEventArb(), fc.constantFrom(...fields), fc.jsonValue()).map(([e, field, value]) => ({ ...e, [field]: value })),
    );
    fc.assert(
      fc.property(candidate, (value) => {
        if (classifyDecoded(value, now).ok) expect(conforms(combined, value)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('documents the gaps: the consumer also checks calendar dates and storable text', () => {
    const gaps = [
      clueFound({ eventId: 'e', occurredAt: '2026-02-30T10:00:00Z' }),
      clueFound({ eventId: 'e', occurredAt: '2026-11-22T10:00:00+23:00' }),
      clueFound({ eventId: 'e\u0000' }),
    ];
    for (const event of gaps) {
      expect(conforms(combined, event)).toBe(true);
      expect(classifyDecoded(event, new Date(T0_MS)).ok).toBe(false);
    }
  });

  it('writeJsonSchemas writes the combined schema and one file per type', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'hunt-schemas-'));
    try {
      const written = await writeJsonSchemas(path.join(dir, 'nested'));
      const names = EVENT_TYPES.map((t) => `${t}.schema.json`);
      expect(written.map((f) => path.basename(f)).sort()).toEqual([COMBINED_SCHEMA_FILE, ...names].sort());
      expect((await readdir(path.join(dir, 'nested'))).sort()).toEqual([COMBINED_SCHEMA_FILE, ...names].sort());
      const read = async (name: string) => JSON.parse(await readFile(path.join(dir, 'nested', name), 'utf8')) as unknown;
      expect(await read(COMBINED_SCHEMA_FILE)).toEqual(combined);
      expect(await read('clue.found.schema.json')).toEqual(byType['clue.found']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
