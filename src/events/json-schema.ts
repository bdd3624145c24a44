/**
 * JSON Schema (draft 2020-12) of the events, generated from the zod schemas so clients in
 * other languages validate against the same contract the consumer enforces.
 *
 * What JSON Schema cannot say, and the consumer still checks: `occurredAt` must be a real
 * calendar date with an offset of at most ±14:59 (`format: date-time` covers most of it
 * for validators that assert formats), and free-text fields must not contain U+0000 or
 * unpaired surrogates. Past that, what the schemas accept the consumer accepts, up to the
 * 64 KiB size limit and the 5-minute future tolerance.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { EVENT_SCHEMAS, EVENT_TYPES, HuntEventSchema, type EventType } from './schema';

export const COMBINED_SCHEMA_FILE = 'hunt-event.schema.json';
// A URN, not a URL: nothing serves these files, and a URL would suggest something does.
const SCHEMA_ID_BASE = 'urn:treasure-hunt-engine:schema:v1:';

export type JsonSchema = Record<string, unknown>;

/** The file name of one type's schema, e.g. `clue.found.schema.json`. */
export function schemaFileName(type: EventType): string {
  return `${type}.schema.json`;
}

function toJsonSchema(schema: z.ZodType, fileName: string): JsonSchema {
  const generated = z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'throw' });
  // $id first so a reader sees which document this is before its body.
  return { $schema: generated.$schema, $id: `${SCHEMA_ID_BASE}${fileName}`, ...generated };
}

/** One schema per event type (envelope included) and the combined `oneOf` of all of them. */
export function buildJsonSchemas(): { combined: JsonSchema; byType: Record<EventType, JsonSchema> } {
  const byType = Object.fromEntries(
    EVENT_TYPES.map((type) => [type, toJsonSchema(EVENT_SCHEMAS[type], schemaFileName(type))]),
  ) as Record<EventType, JsonSchema>;
  return { combined: toJsonSchema(HuntEventSchema, COMBINED_SCHEMA_FILE), byType };
}

/** Writes the schemas into `dir` (created if missing); returns the paths written. */
export async function writeJsonSchemas(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const { combined, byType } = buildJsonSchemas();
  const files: Array<[string, JsonSchema]> = [
    [COMBINED_SCHEMA_FILE, combined],
    ...EVENT_TYPES.map((type): [string, JsonSchema] => [schemaFileName(type), byType[type]]),
  ];
  const written: string[] = [];
  for (const [fileName, schema] of files) {
    const filePath = path.join(dir, fileName);
    await writeFile(filePath, `${JSON.stringify(schema, null, 2)}\n`, 'utf8');
    written.push(filePath);
  }
  return written;
}
