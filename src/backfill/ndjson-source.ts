/**
 * Reads an NDJSON file in chunks from a byte cursor, so an import can stop anywhere and
 * resume exactly after its last committed chunk. One record per line; blank lines are
 * skipped but counted, so line numbers in quarantine match the file.
 */
import fs from 'node:fs';

export interface FileCursor {
  /** Byte offset of the next unread line. */
  byteOffset: number;
  /** 1-based number of the next unread line. */
  line: number;
}

export interface FileRecord {
  line: number;
  value: Buffer;
}

export interface FileChunk {
  records: FileRecord[];
  next: FileCursor;
  eof: boolean;
}

const READ_BLOCK = 1024 * 1024;

export function fileSize(path: string): number {
  return fs.statSync(path).size;
}

/** Reads up to `maxRecords` non-blank lines starting at `cursor`. */
export function readChunk(path: string, cursor: FileCursor, maxRecords: number): FileChunk {
  const fd = fs.openSync(path, 'r');
  try {
    const records: FileRecord[] = [];
    const next = { ...cursor };
    // `pending` holds the file's bytes from next.byteOffset up to readPosition.
    let pending = Buffer.alloc(0);
    let readPosition = cursor.byteOffset;
    const block = Buffer.alloc(READ_BLOCK);
    const take = (bytes: Buffer, consumed: number) => {
      const line = bytes.length > 0 && bytes[bytes.length - 1] === 13 ? bytes.subarray(0, -1) : bytes;
      if (line.toString('utf8').trim() !== '') records.push({ line: next.line, value: Buffer.from(line) });
      next.line++;
      next.byteOffset += consumed;
    };
    while (records.length < maxRecords) {
      const newline = pending.indexOf(10);
      if (newline !== -1) {
        take(pending.subarray(0, newline), newline + 1);
        pending = pending.subarray(newline + 1);
        continue;
      }
      const read = fs.readSync(fd, block, 0, READ_BLOCK, readPosition);
      if (read === 0) {
        // A last line without a newline is still a record.
        if (pending.length > 0) take(pending, pending.length);
        return { records, next, eof: true };
      }
      readPosition += read;
      pending = Buffer.concat([pending, block.subarray(0, read)]);
    }
    return { records, next, eof: next.byteOffset >= fileSize(path) };
  } finally {
    fs.closeSync(fd);
  }
}
