import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readChunk } from '../../src/backfill/ndjson-source';

function fileWith(text: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ndjson-')), 'events.ndjson');
  fs.writeFileSync(file, text);
  return file;
}

describe('readChunk', () => {
  it('reads records in chunks that resume exactly at the cursor, skipping blank lines', () => {
    const file = fileWith('{"a":1}\n\n{"a":2}\r\n{"a":3}\n{"a":4}');
    const first = readChunk(file, { byteOffset: 0, line: 1 }, 2);
    expect(first.records.map((r) => [r.line, r.value.toString()])).toEqual([
      [1, '{"a":1}'],
      [3, '{"a":2}'],
    ]);
    expect(first.eof).toBe(false);
    const second = readChunk(file, first.next, 10);
    expect(second.records.map((r) => [r.line, r.value.toString()])).toEqual([
      [4, '{"a":3}'],
      [5, '{"a":4}'],
    ]);
    expect(second.eof).toBe(true);
    expect(second.next.byteOffset).toBe(fs.statSync(file).size);
    expect(readChunk(file, second.next, 10)).toEqual({ records: [], next: second.next, eof: true });
  });

  it('handles lines longer than one read block', () => {
    const long = JSON.stringify({ pad: 'x'.repeat(3 * 1024 * 1024) });
    const file = fileWith(`${long}\n{"b":1}\n`);
    const chunk = readChunk(file, { byteOffset: 0, line: 1 }, 5);
    expect(chunk.records.map((r) => r.value.length)).toEqual([long.length, 7]);
    expect(chunk.eof).toBe(true);
  });
});
