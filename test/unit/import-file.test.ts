import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkImportFile, MAX_IMPORT_REAL_PATH_BYTES, openImportFile } from '../../src/batch/backfill/import-file';
import { readChunk } from '../../src/batch/backfill/ndjson-source';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imports-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const importDir = path.join(root, 'imports');
fs.mkdirSync(path.join(importDir, 'sub'), { recursive: true });
fs.writeFileSync(path.join(importDir, 'sub', 'ok.ndjson'), '{}\n');
fs.writeFileSync(path.join(importDir, '..archive.ndjson'), '{}\n');
fs.writeFileSync(path.join(root, 'secret.txt'), 'not for import\n');
fs.symlinkSync(path.join(root, 'secret.txt'), path.join(importDir, 'escape.ndjson'));
fs.symlinkSync('/dev/zero', path.join(importDir, 'zero.ndjson'));
fs.symlinkSync(path.join(importDir, 'loop.ndjson'), path.join(importDir, 'loop.ndjson'));

describe('checkImportFile', () => {
  it('accepts a regular file under the import folder and returns its real path', () => {
    expect(checkImportFile(importDir, path.join(importDir, 'sub', 'ok.ndjson'))).toBe(fs.realpathSync(path.join(importDir, 'sub', 'ok.ndjson')));
  });

  it('accepts a file of the folder whose name starts with two dots', () => {
    expect(checkImportFile(importDir, path.join(importDir, '..archive.ndjson'))).toBe(fs.realpathSync(path.join(importDir, '..archive.ndjson')));
  });

  it.each([
    ['a directory', path.join(importDir, 'sub'), /is a directory, not a regular file/],
    ['the folder itself', importDir, /outside the import folder/],
    ['a device, through a symlink', path.join(importDir, 'zero.ndjson'), /outside the import folder/],
    ['a device, directly', '/dev/zero', /outside the import folder/],
    ['a file outside, through a symlink', path.join(importDir, 'escape.ndjson'), /outside the import folder/],
    ['a file outside, through ..', path.join(importDir, '..', 'secret.txt'), /outside the import folder/],
    ['a missing file', path.join(importDir, 'nope.ndjson'), /does not exist/],
    ['a path through a file', path.join(importDir, 'sub', 'ok.ndjson', 'x.ndjson'), /does not exist/],
    ['a loop of symlinks', path.join(importDir, 'loop.ndjson'), /is a loop of symlinks/],
    ['a name too long for the filesystem', path.join(importDir, `${'n'.repeat(300)}.ndjson`), /has a name too long for the filesystem/],
    ['a path of more than 4096 characters', `${importDir}/${'./'.repeat(2100)}sub/ok.ndjson`, /at most 4096/],
    ['a path holding a NUL character', path.join(importDir, 'a\0b.ndjson'), /holds a NUL character/],
  ])('refuses %s, saying what to fix', (_what, file, message) => {
    expect(() => checkImportFile(importDir, file)).toThrow(message);
  });

  it('refuses a file whose real path is too long to key its rejects, even through a short symlink', () => {
    // Folders named by hashes: about 2,300 bytes of real path, under the 4,096-character cap.
    const deep = path.join(importDir, ...Array.from({ length: 10 }, (_, i) => `${i}${'f'.repeat(229)}`));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, 'deep.ndjson'), '{}\n');
    fs.symlinkSync(path.join(deep, 'deep.ndjson'), path.join(importDir, 'short.ndjson'));
    for (const file of [path.join(deep, 'deep.ndjson'), path.join(importDir, 'short.ndjson')]) {
      expect(() => checkImportFile(importDir, file)).toThrow(new RegExp(`has a real path of \\d+ bytes; at most ${MAX_IMPORT_REAL_PATH_BYTES} .*move it to a shorter path`));
    }
  });

  it('answers the same for a path outside the folder whether or not it exists (no oracle for job starters)', () => {
    const existing = () => checkImportFile(importDir, path.join(root, 'secret.txt'));
    const missing = () => checkImportFile(importDir, path.join(root, 'no-such-file.txt'));
    expect(existing).toThrow(/is outside the import folder/);
    expect(missing).toThrow(/is outside the import folder/);
  });

  it('names BACKFILL_IMPORT_DIR when the folder is missing', () => {
    expect(() => checkImportFile(path.join(root, 'none'), path.join(root, 'secret.txt'))).toThrow(/BACKFILL_IMPORT_DIR/);
  });
});

describe('openImportFile', () => {
  it('opens the checked file once: a path swapped afterwards (for a symlink to a file outside) is not what is read', () => {
    const file = path.join(importDir, 'swapped.ndjson');
    fs.writeFileSync(file, '{"line":1}\n');
    const fd = openImportFile(importDir, file);
    try {
      fs.rmSync(file);
      fs.symlinkSync(path.join(root, 'secret.txt'), file);
      expect(readChunk(fd, { byteOffset: 0, line: 1 }, 10).records.map((r) => r.value.toString())).toEqual(['{"line":1}']);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('refuses a FIFO at once, without waiting for a writer', () => {
    const fifo = path.join(importDir, 'pipe.ndjson');
    execFileSync('mkfifo', [fifo]);
    expect(() => openImportFile(importDir, fifo)).toThrow(/is a FIFO, not a regular file/);
  });

  it('checks as checkImportFile does', () => {
    expect(() => openImportFile(importDir, path.join(importDir, 'escape.ndjson'))).toThrow(/outside the import folder/);
    expect(() => openImportFile(importDir, path.join(importDir, 'nope.ndjson'))).toThrow(/does not exist/);
  });
});
