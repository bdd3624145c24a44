import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readChunk, type FileCursor } from '../../src/batch/backfill/ndjson-source';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ndjson-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let files = 0;

function fileWith(text: string): string {
  const file = path.join(tmp, `events-${++files}.ndjson`);
  fs.writeFileSync(file, text);
  return file;
}

describe('readChunk', () => {
  it('reads records in chunks that resume exactly at the cursor, skipping blank lines', () => {
    const file = fileWith('{"a":1}\n\n{"a":2}\r\n{"a":3}\n{"a":4}');
    const first = readChunk(file, { byteOffset: 0, line: 1 }, 3); // three lines, one of them blank
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

  it('keeps only the first maxLineBytes of a line longer than that, and reports its full length', () => {
    const long = JSON.stringify({ pad: 'x'.repeat(3 * 1024 * 1024) });
    const file = fileWith(`${long}\n{"b":1}\n`);
    const chunk = readChunk(file, { byteOffset: 0, line: 1 }, 5, 65_536);
    expect(chunk.records.map((r) => [r.line, r.value.length, r.bytes])).toEqual([
      [1, 65_536, long.length],
      [2, 7, 7],
    ]);
    expect(chunk.records[0]?.value.toString()).toBe(long.slice(0, 65_536));
    expect(chunk.next.byteOffset).toBe(long.length + 1 + 8);
    expect(chunk.eof).toBe(true);
  });

  it('reads a 64 MiB line without a newline in bounded memory', () => {
    const file = path.join(tmp, 'one-line.ndjson');
    const block = Buffer.alloc(1024 * 1024, 0x61);
    const fd = fs.openSync(file, 'w');
    for (let i = 0; i < 64; i++) fs.writeSync(fd, block);
    fs.closeSync(fd);
    const before = process.memoryUsage().arrayBuffers;
    const chunk = readChunk(file, { byteOffset: 0, line: 1 }, 5, 1024);
    const grewBy = process.memoryUsage().arrayBuffers - before;
    expect(chunk.records.map((r) => [r.value.length, r.bytes])).toEqual([[1024, 64 * 1024 * 1024]]);
    expect(chunk.eof).toBe(true);
    // One read block (1 MiB) plus the kept prefix, never the line.
    expect(grewBy).toBeLessThan(8 * 1024 * 1024);
  });

  it('ends a chunk at its byte budget, however many records were asked for, and resumes after it', () => {
    // 40 lines of 1,000 bytes and a budget of 10,000: the chunk stops at the 10th line.
    const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(1000 - 15 - String(i).length) }));
    expect(new Set(lines.map((l) => l.length))).toEqual(new Set([1000]));
    const file = fileWith(lines.join('\n') + '\n');
    const read: string[] = [];
    let cursor = { byteOffset: 0, line: 1 };
    let chunks = 0;
    for (let eof = false; !eof; chunks++) {
      const chunk = readChunk(file, cursor, 10_000, 65_536, 10_000);
      expect(chunk.records.length).toBeLessThanOrEqual(10);
      read.push(...chunk.records.map((r) => r.value.toString()));
      ({ next: cursor, eof } = chunk);
    }
    expect(read).toEqual(lines);
    expect(chunks).toBe(4);
    // A single record larger than the budget still makes a chunk (of one).
    expect(readChunk(file, { byteOffset: 0, line: 1 }, 10_000, 65_536, 10).records).toHaveLength(1);
  });

  it('stops a chunk at maxLines lines, blank ones included: a flood of blank lines is read a bounded piece at a time', () => {
    const file = fileWith(`${'\n'.repeat(250_000)}{"a":1}\n`);
    const sizes: number[] = [];
    let cursor = { byteOffset: 0, line: 1 };
    for (;;) {
      const chunk = readChunk(file, cursor, 100_000);
      sizes.push(chunk.next.line - cursor.line);
      cursor = chunk.next;
      if (chunk.eof) {
        expect(chunk.records.map((r) => r.line)).toEqual([250_001]);
        break;
      }
      expect(chunk.records).toEqual([]); // nothing but blank lines, and not the end of the file
    }
    expect(sizes).toEqual([100_000, 100_000, 50_001]);
  });

  it('stops a chunk after the line that reaches maxScanBytes of file, blank or not', () => {
    const blank = ' '.repeat(1000);
    const file = fileWith(`${blank}\n${blank}\n${blank}\n{"a":1}\n`);
    const first = readChunk(file, { byteOffset: 0, line: 1 }, 10_000, 65_536, 16 * 1024 * 1024, 1500);
    expect(first).toEqual({ records: [], next: { byteOffset: 2002, line: 3 }, eof: false });
    const second = readChunk(file, first.next, 10_000, 65_536, 16 * 1024 * 1024, 1500);
    expect(second.records.map((r) => r.line)).toEqual([4]);
    expect(second.eof).toBe(true);
  });

  it('rejects a line longer than maxScanBytes from the chunk that reaches the budget, and skips the rest of it a budget at a time', () => {
    // Line 2 is 3 MiB; a call may scan 1,500 bytes (checked per 1 MiB read block): its first
    // bytes come out unfinished, then the chunks skip its rest, then line 3 is read.
    const long = `{"pad":"${'x'.repeat(3 * 1024 * 1024 - 10)}"}`;
    const file = fileWith(`{"a":1}\n${long}\n{"a":2}\n`);
    const read = (cursor: FileCursor) => readChunk(file, cursor, 10_000, 1024, 16 * 1024 * 1024, 1500);
    const first = read({ byteOffset: 0, line: 1 });
    expect(first.records.map((r) => [r.line, r.value.length, r.unfinished ?? false])).toEqual([
      [1, 7, false],
      [2, 1024, true],
    ]);
    expect(first.records[1]?.value.toString()).toBe(long.slice(0, 1024));
    expect(first.records[1]?.bytes).toBeLessThan(long.length);
    expect(first.next).toMatchObject({ line: 2, midLine: true });
    expect(first.eof).toBe(false);
    const chunks = [first];
    for (let cursor = first.next; !chunks[chunks.length - 1]!.eof; ) {
      const chunk = read(cursor);
      expect(chunk.next.byteOffset - cursor.byteOffset).toBeLessThanOrEqual(1500 + 1024 * 1024); // the budget, checked per read block
      expect(chunk.next.byteOffset).toBeGreaterThan(cursor.byteOffset); // and always on
      chunks.push(chunk);
      cursor = chunk.next;
    }
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.flatMap((c) => c.records.map((r) => [r.line, r.value.toString()]))).toEqual([
      [1, '{"a":1}'],
      [2, long.slice(0, 1024)],
      [3, '{"a":2}'],
    ]);
  });

  it('never cuts a line that could still be an event because it straddles the scan budget', () => {
    // The budget is 1 MiB (one read block); line 2, 300 bytes, starts 200 bytes before it.
    const first = 'x'.repeat(1024 * 1024 - 200 - 1);
    const event = `{"pad":"${'y'.repeat(300 - 10)}"}`;
    const file = fileWith(`${first}\n${event}\n{"a":1}\n`);
    const chunk = readChunk(file, { byteOffset: 0, line: 1 }, 10_000, 1024, 16 * 1024 * 1024, 1024 * 1024);
    expect(chunk.records.map((r) => [r.line, r.bytes, r.unfinished ?? false])).toEqual([
      [1, first.length, false],
      [2, event.length, false],
    ]);
    expect(chunk.records[1]?.value.toString()).toBe(event);
  });

  it('skips a UTF-8 byte order mark at the start of the file, and only there', () => {
    const file = fileWith('\ufeff{"a":1}\n\ufeff{"a":2}\n');
    const chunk = readChunk(file, { byteOffset: 0, line: 1 }, 10);
    expect(chunk.records.map((r) => r.value.toString())).toEqual(['{"a":1}', '\ufeff{"a":2}']);
    expect(chunk.next.byteOffset).toBe(fs.statSync(file).size);
  });

  it('counts a line of only whitespace as blank but keeps its line number', () => {
    const file = fileWith('{"a":1}\n \t\r\n{"a":2}\n');
    expect(readChunk(file, { byteOffset: 0, line: 1 }, 5).records.map((r) => r.line)).toEqual([1, 3]);
  });

  it('judges a long line as blank by all of it, not by the part kept: whitespace and then an event is a record, too large', () => {
    const file = fileWith(`${' '.repeat(70_000)}{"a":1}\n${' \t'.repeat(40_000)}\n{"a":2}\n`);
    const chunk = readChunk(file, { byteOffset: 0, line: 1 }, 10, 65_536);
    expect(chunk.records.map((r) => ({ line: r.line, bytes: r.bytes, kept: r.value.length }))).toEqual([
      { line: 1, bytes: 70_007, kept: 65_536 },
      { line: 3, bytes: 7, kept: 7 },
    ]);
  });

  it('leaves a CRLF ending out of the line length when the part kept stops short of it', () => {
    const event = 'x'.repeat(65_536);
    const file = fileWith(`${event}\r\n${event}x\r\n`);
    const [fits, tooLong] = readChunk(file, { byteOffset: 0, line: 1 }, 10, 65_536).records;
    expect(fits).toMatchObject({ line: 1, bytes: 65_536 });
    expect(fits?.value.toString()).toBe(event);
    expect(tooLong).toMatchObject({ line: 2, bytes: 65_537 });
  });
});
