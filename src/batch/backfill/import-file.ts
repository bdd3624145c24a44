/**
 * Which files a backfill may read: regular files under the configured import folder
 * (BACKFILL_IMPORT_DIR), after resolving symlinks. A job input is typed by hand in the
 * Temporal UI: without this, a path could name a directory, a device such as /dev/zero (an
 * endless line), a FIFO that blocks forever, or any file the worker can read.
 */
import fs from 'node:fs';
import path from 'node:path';

/** A file the job must not read; the message says what to fix. */
export class ImportFileError extends Error {
  override readonly name = 'ImportFileError';
}

/** The file's real path, or an ImportFileError that says why it may not be imported. */
export function checkImportFile(importDir: string, file: string): string {
  let realDir: string;
  try {
    realDir = fs.realpathSync(importDir);
  } catch {
    throw new ImportFileError(`the import folder ${importDir} (BACKFILL_IMPORT_DIR) does not exist on the worker's machine; create it and put the file there`);
  }
  const outside = () => new ImportFileError(`file ${file} is outside the import folder ${importDir} (BACKFILL_IMPORT_DIR); copy or move it there`);
  // Judged on the path as written first: whoever may start a job must not learn from the
  // answer whether a path outside the folder exists on the worker's machine.
  if (!isInside(path.resolve(importDir), path.resolve(file)) && !isInside(realDir, path.resolve(file))) throw outside();
  let realFile: string;
  try {
    realFile = fs.realpathSync(file);
  } catch {
    throw new ImportFileError(`file ${file} does not exist on the worker's machine (it must be under ${importDir})`);
  }
  // A symlink in the folder may still lead out of it.
  if (!isInside(realDir, realFile)) throw outside();
  const stat = fs.statSync(realFile);
  if (!stat.isFile()) {
    throw new ImportFileError(`${file} is ${kindOf(stat)}, not a regular file; give the path of an NDJSON file`);
  }
  return realFile;
}

function isInside(dir: string, file: string): boolean {
  const relative = path.relative(dir, file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

function kindOf(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}
