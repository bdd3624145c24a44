/**
 * Reads an NDJSON file in chunks from a byte cursor, so an import can stop anywhere and
 * resume exactly after its last committed chunk. One record per line; blank lines are
 * skipped but counted, so line numbers in quarantine match the file.
 *
 * Memory stays bounded whatever the file holds: a line longer than `maxLineBytes` (by default
 * the largest event, 64 KiB) is not buffered whole; its first `maxLineBytes` are kept (for
 * quarantine) and the rest only counted, so the record is rejected as too_large with its
 * real size. Time stays bounded too: a call scans at most `maxScanBytes` of the file, inside
 * a line as well. A line longer than that (a file of gigabytes of one line, or a sparse file
 * of zeros) is rejected by the chunk that reaches the budget, with its first bytes, and the
 * cursor stays inside it (`midLine`): the next chunks skip the rest of it, each within the
 * budget, so every call ends in time to heartbeat and the import moves on.
 *
 * A UTF-8 byte order mark at the very start of the file (some Windows tools write one) is
 * not part of line 1.
 */
import fs from 'node:fs';
import { MAX_EVENT_BYTES } from '../../events/validate';

export interface FileCursor {
  /** Byte offset of the next unread line (or, `midLine`, of the rest of line `line`). */
  byteOffset: number;
  /** 1-based number of the next unread line. */
  line: number;
  /** Inside line `line`, whose start a chunk already rejected: the rest of it is skipped. */
  midLine?: boolean;
}

export interface FileRecord {
  line: number;
  /** The line's bytes, or its first `maxLineBytes` when `bytes` is larger. */
  value: Buffer;
  /** The line's full length in bytes (without the newline); with `unfinished`, the bytes scanned of it. */
  bytes: number;
  /** The line goes on past what a chunk may scan: longer than `bytes`, and never a whole event. */
  unfinished?: boolean;
  /** Nothing but spaces, tabs and CRs, the whole line (not only what is kept of it): no record. */
  blank?: boolean;
}

export interface FileChunk {
  records: FileRecord[];
  next: FileCursor;
  eof: boolean;
}

const READ_BLOCK = 1024 * 1024;
/**
 * Bytes of record values a chunk holds at most (it stops after the record that reaches this):
 * `maxRecords` lines of up to 64 KiB each could otherwise fill 640 MiB at 10,000 records, and
 * an import keeps a few chunks in memory at once (one reading, one per committing lane).
 */
export const CHUNK_BYTE_BUDGET = 16 * 1024 * 1024;
/**
 * Bytes of file a chunk scans at most, blank lines and the unkept part of long lines
 * included (it stops after the line that reaches this). Reading is synchronous: without a
 * bound, a file of blank lines or of long whitespace made one call run for as long as the
 * file is big, past the activity's heartbeat timeout, and every retry started over.
 */
export const CHUNK_SCAN_BUDGET = 256 * 1024 * 1024;

export function fileSize(path: string): number {
  return fs.statSync(path).size;
}

/**
 * Reads up to `maxLines` lines starting at `cursor` and returns the non-blank ones as
 * records; stops early once the records hold `maxChunkBytes` or the lines read span
 * `maxScanBytes` of the file (always at least one line, so every call moves on). Blank lines
 * count toward `maxLines`: a chunk may hold fewer records, even none, and is not the end.
 */
export function readChunk(
  file: string | number,
  cursor: FileCursor,
  maxLines: number,
  maxLineBytes = MAX_EVENT_BYTES,
  maxChunkBytes = CHUNK_BYTE_BUDGET,
  maxScanBytes = CHUNK_SCAN_BUDGET,
): FileChunk {
  // A descriptor is the caller's (backfill/import-file.ts opens the checked file once per call).
  const fd = typeof file === 'number' ? file : fs.openSync(file, 'r');
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error(`${String(file)} is not a regular file`);
    const reader = new LineReader(fd, cursor, maxLineBytes);
    const records: FileRecord[] = [];
    let lines = 0;
    let bytes = 0;
    const scanned = () => reader.cursor.byteOffset - cursor.byteOffset;
    if (cursor.midLine && !reader.skipRestOfLine(maxScanBytes)) return { records, next: reader.cursor, eof: reader.atEnd() };
    while (lines < maxLines && bytes < maxChunkBytes && scanned() < maxScanBytes) {
      // Never less than a whole event's worth: a line cut short of that could be a valid
      // event straddling the budget's mark, and would be rejected as unfinished.
      const line = reader.nextLine(Math.max(maxScanBytes - scanned(), maxLineBytes + 1));
      if (!line) return { records, next: reader.cursor, eof: true };
      lines++;
      if (line.blank) continue;
      records.push(line);
      bytes += line.value.length;
      if (line.unfinished) break;
    }
    return { records, next: reader.cursor, eof: reader.atEnd() };
  } finally {
    if (typeof file !== 'number') fs.closeSync(fd);
  }
}

class LineReader {
  readonly cursor: FileCursor;
  private readonly block = Buffer.alloc(READ_BLOCK);
  /** Unconsumed bytes of the last read block (a view into `block`). */
  private pending = Buffer.alloc(0);
  private readPosition: number;
  private eof = false;

  constructor(
    private readonly fd: number,
    start: FileCursor,
    private readonly maxLineBytes: number,
  ) {
    this.cursor = { ...start };
    this.readPosition = start.byteOffset;
  }

  /**
   * The next line (possibly blank), or undefined at the end of the file. Past `maxScanBytes`
   * of it without its end, the line so far, `unfinished`, with the cursor left inside it.
   */
  nextLine(maxScanBytes: number): FileRecord | undefined {
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let lineBytes = 0;
    // Judged on the whole line, not on the part kept: a line of 70,000 spaces and then an
    // event was skipped as blank (lost without a count), and a CRLF line of exactly 64 KiB
    // was counted with its CR (rejected as too large).
    let content = false;
    let lastByte = -1;
    if (this.cursor.byteOffset === 0) this.skipByteOrderMark();
    for (;;) {
      if (lineBytes >= maxScanBytes) {
        const record = { line: this.cursor.line, value: Buffer.concat(kept), bytes: lineBytes, unfinished: true };
        this.cursor.byteOffset += lineBytes;
        this.cursor.midLine = true;
        return record;
      }
      const newline = this.pending.indexOf(10);
      const upto = newline === -1 ? this.pending.length : newline;
      const part = this.pending.subarray(0, upto);
      if (keptBytes < this.maxLineBytes) {
        const keep = part.subarray(0, this.maxLineBytes - keptBytes);
        kept.push(Buffer.from(keep));
        keptBytes += keep.length;
      }
      lineBytes += part.length;
      if (part.length > 0) {
        content ||= !isBlank(part);
        lastByte = part[part.length - 1]!;
      }
      if (newline !== -1) {
        this.pending = this.pending.subarray(newline + 1);
        return this.finish(kept, lineBytes, lineBytes + 1, { content, lastByte });
      }
      this.pending = Buffer.alloc(0);
      if (!this.fill()) {
        // A last line without a newline is still a record.
        return lineBytes > 0 ? this.finish(kept, lineBytes, lineBytes, { content, lastByte }) : undefined;
      }
    }
  }

  /**
   * Skips the rest of the line the cursor is inside (`midLine`), at most `maxScanBytes` of it:
   * true once past its end (the cursor then at the next line), false if it goes on.
   */
  skipRestOfLine(maxScanBytes: number): boolean {
    let skipped = 0;
    for (;;) {
      const newline = this.pending.indexOf(10);
      if (newline !== -1) {
        this.cursor.byteOffset += skipped + newline + 1;
        this.pending = this.pending.subarray(newline + 1);
        this.endLine();
        return true;
      }
      skipped += this.pending.length;
      this.pending = Buffer.alloc(0);
      if (!this.fill()) {
        this.cursor.byteOffset += skipped;
        this.endLine();
        return true;
      }
      if (skipped >= maxScanBytes) {
        this.cursor.byteOffset += skipped;
        return false;
      }
    }
  }

  private endLine(): void {
    this.cursor.line++;
    delete this.cursor.midLine;
  }

  /** EF BB BF at the start of the file: a byte order mark, not data. */
  private skipByteOrderMark(): void {
    if (this.pending.length < 3 && !this.fill()) return;
    if (this.pending[0] === 0xef && this.pending[1] === 0xbb && this.pending[2] === 0xbf) {
      this.pending = this.pending.subarray(3);
      this.cursor.byteOffset += 3;
    }
  }

  atEnd(): boolean {
    if (this.pending.length > 0) return false;
    return !this.fill();
  }

  private finish(kept: Buffer[], lineBytes: number, consumed: number, seen: { content: boolean; lastByte: number }): FileRecord {
    let value = Buffer.concat(kept);
    let bytes = lineBytes;
    if (seen.lastByte === 13) {
      // A CRLF line ending: not part of the record, whether or not the part kept reaches it.
      bytes--;
      if (value.length === lineBytes) value = value.subarray(0, -1);
    }
    const record: FileRecord = { line: this.cursor.line, value, bytes, ...(seen.content ? {} : { blank: true }) };
    this.cursor.line++;
    this.cursor.byteOffset += consumed;
    return record;
  }

  private fill(): boolean {
    if (this.eof) return false;
    const read = fs.readSync(this.fd, this.block, 0, READ_BLOCK, this.readPosition);
    if (read === 0) {
      this.eof = true;
      return false;
    }
    this.readPosition += read;
    // A view, not a copy: `pending` is always used up before the next read, and the bytes
    // that outlive it (kept line prefixes) are copied out in nextLine.
    this.pending = this.block.subarray(0, read);
    return true;
  }
}

function isBlank(value: Buffer): boolean {
  for (const byte of value) if (byte !== 32 && byte !== 9 && byte !== 13) return false;
  return true;
}
