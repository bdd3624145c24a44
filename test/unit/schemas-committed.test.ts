/** The JSON Schema files committed for clients in other languages match the zod schemas. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config';
import { buildJsonSchemas, COMBINED_SCHEMA_FILE, schemaFileName } from '../../src/events/json-schema';
import { EVENT_TYPES } from '../../src/events/schema';

const read = (file: string) => JSON.parse(fs.readFileSync(path.join(projectRoot, 'schemas', file), 'utf8'));

describe('schemas/', () => {
  it('is what `npm run schemas` writes today (run it after changing src/events/schema.ts)', () => {
    const { combined, byType } = buildJsonSchemas();
    expect(read(COMBINED_SCHEMA_FILE)).toEqual(combined);
    for (const type of EVENT_TYPES) expect(read(schemaFileName(type))).toEqual(byType[type]);
  });
});
