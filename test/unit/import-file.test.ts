import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkImportFile } from '../../src/batch/backfill/import-file';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imports-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const importDir = path.join(root, 'imports');
fs.mkdirSync(path.join(importDir, 'sub'), { recursive: true });
fs.writeFileSync(path.join(importDir, 'sub', 'ok.ndjson'), '{}\n');
fs.writeFileSync(path.join(root, 'secret.txt'), 'not for import\n');
fs.symlinkSync(path.join(root, 'secret.txt'), path.join(importDir, 'escape.ndjson'));
fs.symlinkSync('/dev/zero', path.join(importDir, 'zero.ndjson'));

describe('checkImportFile', () => {
  it('accepts a regular file under the import folder and returns its real path', () => {
    expect(checkImportFile(importDir, path.join(importDir, 'sub', 'ok.ndjson'))).toBe(fs.realpathSync(path.join(importDir, 'sub', 'ok.ndjson')));
  });

  it.each([
    ['a directory', path.join(importDir, 'sub'), /is a directory, not a regular file/],
    ['the folder itself', importDir, /outside the import folder/],
    ['a device, through a symlink', path.join(importDir, 'zero.ndjson'), /outside the import folder/],
    ['a device, directly', '/dev/zero', /outside the import folder/],
    ['a file outside, through a symlink', path.join(importDir, 'escape.ndjson'), /outside the import folder/],
    ['a file outside, through ..', path.join(importDir, '..', 'secret.txt'), /outside the import folder/],
    ['a missing file', path.join(importDir, 'nope.ndjson'), /does not exist/],
  ])('refuses %s, saying what to fix', (_what, file, message) => {
    expect(() => checkImportFile(importDir, file)).toThrow(message);
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
