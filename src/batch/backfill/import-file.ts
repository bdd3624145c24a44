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

/** Longer paths are refused as they are: Linux's PATH_MAX. */
export const MAX_IMPORT_PATH_CHARS = 4096;

/**
 * The file's rejects are quarantined under `file:<its real path>`, and that key is one entry
 * of a btree index, which Postgres caps at 2,704 bytes. A real path of hashed folder names
 * past about 2,600 bytes passed the 4,096-character cap, and then every chunk holding an
 * invalid line failed its quarantine insert (54000) on every try, for ever.
 */
export const MAX_IMPORT_REAL_PATH_BYTES = 2000;

/**
 * The file's real path, or an ImportFileError that says why it may not be imported. A
 * failure of the filesystem that no change of the input cures (EIO, a stale NFS handle) is
 * thrown as it is, and the step retries it.
 */
export function checkImportFile(importDir: string, file: string): string {
  if (file.length > MAX_IMPORT_PATH_CHARS) throw new ImportFileError(`the path has ${file.length} characters; at most ${MAX_IMPORT_PATH_CHARS}`);
  if (file.includes('\0')) throw new ImportFileError('the path holds a NUL character, which no file name can');
  let realDir: string;
  try {
    realDir = fs.realpathSync(importDir);
  } catch (err) {
    throw refusal(err, `the import folder ${importDir} (BACKFILL_IMPORT_DIR)`, `does not exist on the worker's machine; create it and put the file there`);
  }
  const outside = () => new ImportFileError(`file ${file} is outside the import folder ${importDir} (BACKFILL_IMPORT_DIR); copy or move it there`);
  // Judged on the path as written first: whoever may start a job must not learn from the
  // answer whether a path outside the folder exists on the worker's machine.
  if (!isInside(path.resolve(importDir), path.resolve(file)) && !isInside(realDir, path.resolve(file))) throw outside();
  let realFile: string;
  try {
    realFile = fs.realpathSync(file);
  } catch (err) {
    throw refusal(err, `file ${file}`, `does not exist on the worker's machine (it must be under ${importDir})`);
  }
  // A symlink in the folder may still lead out of it.
  if (!isInside(realDir, realFile)) throw outside();
  const realBytes = Buffer.byteLength(realFile);
  if (realBytes > MAX_IMPORT_REAL_PATH_BYTES) {
    throw new ImportFileError(
      `file ${file} has a real path of ${realBytes} bytes; at most ${MAX_IMPORT_REAL_PATH_BYTES} (its rejects are quarantined under it): move it to a shorter path in ${importDir}`,
    );
  }
  const stat = fs.statSync(realFile);
  if (!stat.isFile()) {
    throw new ImportFileError(`${file} is ${kindOf(stat)}, not a regular file; give the path of an NDJSON file`);
  }
  return realFile;
}

/**
 * What a failed look-up of `what` says, by its code: an ImportFileError for what the input or
 * the worker's setup must change, the error itself (retried) for another failure of the
 * filesystem (one with a system call: EIO, a stale NFS handle).
 */
function refusal(err: unknown, what: string, missing: string): unknown {
  const { code, syscall, message } = (err ?? {}) as NodeJS.ErrnoException;
  // Not the filesystem's: Node refused the argument itself, which no retry changes.
  if (syscall === undefined) return new ImportFileError(`${what} cannot be looked up: ${message ?? String(err)}`);
  if (code === 'ENOENT' || code === 'ENOTDIR') return new ImportFileError(`${what} ${missing}`);
  if (code === 'EACCES' || code === 'EPERM') return new ImportFileError(`${what} cannot be reached by the worker's user (${code}); let it read the folders on the way`);
  if (code === 'ELOOP') return new ImportFileError(`${what} is a loop of symlinks; give the path of a regular file`);
  if (code === 'ENAMETOOLONG') return new ImportFileError(`${what} has a name too long for the filesystem`);
  return err;
}

/**
 * Opens the file checkImportFile allows, once, for every chunk a call reads: opened again by
 * name per chunk, the path could be swapped between the check and the open for a symlink to
 * a file outside the folder (whose lines would land in quarantine, readable to operators) or
 * for a FIFO (an open that never returns). The open follows no symlink at its last step and
 * never waits; what it opened must be a regular file inside the folder, by its real path
 * (/proc/self/fd) or, without /proc, by device and inode against the checked path.
 */
export function openImportFile(importDir: string, file: string): number {
  const realFile = checkImportFile(importDir, file);
  let fd: number;
  try {
    fd = fs.openSync(realFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new ImportFileError(`file ${file} was replaced by a symlink while the job ran; give the path of a regular file in ${importDir}`);
    if (code === 'ENOENT') throw new ImportFileError(`file ${file} no longer exists on the worker's machine (it must be under ${importDir})`);
    if (code === 'EACCES' || code === 'EPERM') throw new ImportFileError(`file ${file} cannot be read by the worker (${code}); let the worker's user read it`);
    throw err;
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new ImportFileError(`${file} is ${kindOf(stat)}, not a regular file; give the path of an NDJSON file`);
    if (!isInside(fs.realpathSync(importDir), openedPath(fd) ?? realFile) || !sameFile(stat, realFile)) {
      throw new ImportFileError(`file ${file} was replaced while the job ran; give the path of a regular file in ${importDir}`);
    }
    return fd;
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/** The real path of an open descriptor, where /proc says it (Linux). */
function openedPath(fd: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

function sameFile(opened: fs.Stats, realFile: string): boolean {
  try {
    const named = fs.lstatSync(realFile);
    return named.dev === opened.dev && named.ino === opened.ino;
  } catch {
    return false;
  }
}

function isInside(dir: string, file: string): boolean {
  const relative = path.relative(dir, file);
  // `..` itself or a path through it; `..archive.ndjson` is a file of the folder.
  return relative !== '' && relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

function kindOf(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}
