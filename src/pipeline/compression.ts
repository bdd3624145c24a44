/**
 * Reading record batches that producers compressed. kafkajs reads only gzip by itself and
 * fails the whole fetch on a batch compressed with snappy, lz4 or zstd, the codecs Java,
 * librdkafka and Go clients offer, crashing the consumer for good: one such batch from any
 * client would stop ingest. Here every codec Kafka defines gets a decompressor, all of them
 * bounded: a producer's limit applies to the compressed batch, and 1 MB of zstd can unpack
 * to gigabytes, which would take the process's memory with it.
 *
 * A batch that unpacks past MAX_UNPACKED_BATCH_BYTES, or cannot be unpacked at all, fails
 * with an error that kafkajs (patches/kafkajs+2.2.4.patch) turns into one stand-in record at
 * the batch's last offset, holding the batch's compressed records as its value; the classifier
 * rejects it with the reason (`too_large`, `unreadable`) and keeps those bytes, so the
 * partition moves on and what could not be read is in the DLQ and quarantine. Each batch's
 * budget bounds only that batch: the same patch also stops unpacking one partition's fetch
 * past 32 MiB (after a whole batch; the next fetch resumes), or a fetch of many small batches
 * that each unpack to nearly 64 MiB would hold them all at once; and the whole fetch response
 * past 64 MiB or 200,000 records, all its partitions together (partitions reached after that
 * are read by the next fetch).
 *
 * Pure JavaScript decompressors (fzstd, lz4js, snappyjs): no native build on install, and
 * each can be held to a byte budget.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Decompress as ZstdStream } from 'fzstd';
import kafkajs from 'kafkajs';
import lz4 from 'lz4js';
import snappy from 'snappyjs';

/**
 * The most one record batch may unpack to: 64 MiB. A batch is at most what the topic's
 * max.message.bytes lets through (1 MiB by default), and JSON events compress 5-20 times.
 */
export const MAX_UNPACKED_BATCH_BYTES = 64 * 1024 * 1024;

/**
 * The most records one compressed batch may hold: 100,000. The byte budget alone would let
 * 64 MiB of near-empty records through, millions of objects for kafkajs to build. A client's
 * batch rarely holds more than 10,000 (librdkafka's default batch.num.messages).
 */
export const MAX_RECORDS_PER_BATCH = 100_000;

/** A compressed batch that unpacks past the budget; its records are rejected as `too_large`. */
export class BatchTooLargeError extends Error {
  override readonly name = 'BatchTooLargeError';
  constructor(codec: string, detail: string) {
    super(`its ${codec} record batch is too large to unpack: ${detail} (a batch may unpack to ${MAX_UNPACKED_BATCH_BYTES} bytes and ${MAX_RECORDS_PER_BATCH} records)`);
  }
}

/** A compressed batch whose bytes are not what its codec writes; its records are rejected as `unreadable`. */
export class BatchUnreadableError extends Error {
  override readonly name = 'BatchUnreadableError';
  constructor(codec: string, detail: string) {
    super(`its ${codec} record batch cannot be unpacked: ${detail}`);
  }
}

/** What the kafkajs patch puts on the stand-in record of a batch it could not unpack. */
export interface UnreadableBatch {
  error: Error;
  firstOffset: string;
  lastOffset: string;
  /** The record count the batch header states. */
  count: number;
  /** The codec the batch header names (Kafka's attribute bits: 1 gzip, 2 snappy, 3 lz4, 4 zstd). */
  codecId: number;
}

const CODEC_NAMES: Record<number, string> = { 1: 'gzip', 2: 'snappy', 3: 'lz4', 4: 'zstd' };

/** The codec's name, or what the header says when it names no codec Kafka defines. */
export function codecName(codecId: number): string {
  return CODEC_NAMES[codecId] ?? `codec ${codecId} (not one Kafka defines)`;
}

/** The contract's reason for the records of an unreadable batch. */
export function unreadableReason(batch: UnreadableBatch): 'too_large' | 'unreadable' {
  return batch.error?.name === 'BatchTooLargeError' ? 'too_large' : 'unreadable';
}

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  /** `recordCount`: what the batch header states (the kafkajs patch passes it). */
  decompress(buffer: Buffer, recordCount?: number): Promise<Buffer>;
}

const gzip = promisify(zlib.gzip);
const unzip = promisify(zlib.unzip);

/** Only for reading: this project's producers send uncompressed. */
const readOnly = (codec: string) => async (): Promise<Buffer> => {
  throw new Error(`${codec} compression is supported for reading only`);
};

/** Decompression under `budget` bytes and `maxRecords` records, for each codec Kafka defines. */
export function boundedCodecs(budget = MAX_UNPACKED_BATCH_BYTES, maxRecords = MAX_RECORDS_PER_BATCH): Record<'gzip' | 'snappy' | 'lz4' | 'zstd', Codec> {
  const bounded =
    (codec: string, unpack: (buffer: Buffer, budget: number) => Buffer | Promise<Buffer>) =>
    async (buffer: Buffer, recordCount = 0): Promise<Buffer> => {
      if (recordCount > maxRecords) throw new BatchTooLargeError(codec, `it states ${recordCount} records`);
      return unpack(buffer, budget);
    };
  return {
    gzip: { compress: async (encoder) => gzip(encoder.buffer), decompress: bounded('gzip', ungzip) },
    snappy: { compress: readOnly('snappy'), decompress: bounded('snappy', unsnappy) },
    lz4: { compress: readOnly('lz4'), decompress: bounded('lz4', unlz4) },
    zstd: { compress: readOnly('zstd'), decompress: bounded('zstd', unzstd) },
  };
}

let registered = false;

/** Makes kafkajs read every codec, bounded (idempotent; kafkajs's codec table is global). */
export function useBoundedCodecs(): void {
  if (registered) return;
  registered = true;
  const codecs = boundedCodecs();
  // Through the default export: Node's named exports of this CommonJS module leave these out.
  const { CompressionCodecs, CompressionTypes } = kafkajs;
  CompressionCodecs[CompressionTypes.GZIP] = () => codecs.gzip;
  CompressionCodecs[CompressionTypes.Snappy] = () => codecs.snappy;
  CompressionCodecs[CompressionTypes.LZ4] = () => codecs.lz4;
  CompressionCodecs[CompressionTypes.ZSTD] = () => codecs.zstd;
}

// --- gzip: zlib, which stops at maxOutputLength by itself

async function ungzip(buffer: Buffer, budget: number): Promise<Buffer> {
  try {
    return await unzip(buffer, { maxOutputLength: budget });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new BatchTooLargeError('gzip', `${buffer.length} bytes unpack past the budget`);
    throw new BatchUnreadableError('gzip', (err as Error).message);
  }
}

// --- snappy: raw, or in the framing of Java's xerial library (what the Java client writes)

const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = 16; // magic, version, compatible version

export function unsnappy(buffer: Buffer, budget: number): Buffer {
  if (buffer.length < XERIAL_HEADER_BYTES || !buffer.subarray(0, XERIAL_MAGIC.length).equals(XERIAL_MAGIC)) return unsnappyBlock(buffer, budget);
  const parts: Buffer[] = [];
  let total = 0;
  for (let at = XERIAL_HEADER_BYTES; at < buffer.length; ) {
    if (at + 4 > buffer.length) throw new BatchUnreadableError('snappy', 'a chunk length is cut off');
    const length = buffer.readInt32BE(at);
    at += 4;
    if (length < 0 || at + length > buffer.length) throw new BatchUnreadableError('snappy', 'a chunk runs past the batch');
    const part = unsnappyBlock(buffer.subarray(at, at + length), budget - total);
    parts.push(part);
    total += part.length;
    at += length;
  }
  return Buffer.concat(parts, total);
}

/** A raw snappy block states its unpacked length first, so the budget is checked before anything is allocated. */
function unsnappyBlock(block: Buffer, budget: number): Buffer {
  const length = varint32(block);
  if (length === undefined) throw new BatchUnreadableError('snappy', 'no valid length preamble');
  if (length > budget) throw new BatchTooLargeError('snappy', `a block states ${length} bytes`);
  let out: Uint8Array;
  try {
    out = snappy.uncompress(block, budget);
  } catch (err) {
    throw new BatchUnreadableError('snappy', (err as Error).message);
  }
  return Buffer.from(out.buffer, out.byteOffset, out.length);
}

function varint32(bytes: Buffer): number | undefined {
  let value = 0;
  for (let i = 0; i < 5 && i < bytes.length; i++) {
    const byte = bytes[i] as number;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return value;
  }
  return undefined;
}

// --- lz4: the LZ4 frame format, which Kafka's v2 record batches use

/** The most an LZ4 block unpacks to per byte: each 0xFF length byte adds 255 bytes. */
const LZ4_MAX_RATIO = 255;

export function unlz4(buffer: Buffer, budget: number): Buffer {
  const bound = lz4Bound(buffer);
  // Decoding into a buffer of `budget + 1` bytes shows whether the batch needs more: lz4js
  // counts on past the end of its output (a typed array drops those writes).
  const out = Buffer.alloc(Math.min(bound, budget + 1));
  let size: number;
  try {
    size = lz4.decompressFrame(buffer, out);
  } catch (err) {
    throw new BatchUnreadableError('lz4', (err as Error).message);
  }
  if (size > budget) throw new BatchTooLargeError('lz4', `${buffer.length} bytes unpack past the budget`);
  if (size > out.length) throw new BatchUnreadableError('lz4', 'a block unpacks past what its frame allows');
  return out.subarray(0, size);
}

/** An upper bound of the frame's unpacked size, from its block headers (lz4js's own trusts the frame's claims). */
function lz4Bound(frame: Buffer): number {
  if (frame.length < 7 || frame.readUInt32LE(0) !== 0x184d2204) throw new BatchUnreadableError('lz4', 'no LZ4 frame magic');
  const flags = frame[4] as number;
  const blockChecksums = (flags & 0x10) !== 0;
  const blockMax = [0, 0, 0, 0, 0x10000, 0x40000, 0x100000, 0x400000][((frame[5] as number) >> 4) & 7] ?? 0;
  if (blockMax === 0) throw new BatchUnreadableError('lz4', 'an invalid block size');
  let at = 4 + 2 + ((flags & 0x08) !== 0 ? 8 : 0) + 1;
  let bound = 0;
  for (;;) {
    if (at + 4 > frame.length) throw new BatchUnreadableError('lz4', 'the frame is cut off');
    const word = frame.readUInt32LE(at);
    at += 4;
    if (word === 0) return bound;
    const stored = (word & 0x80000000) !== 0;
    const size = word & 0x7fffffff;
    bound += stored ? size : Math.min(blockMax, size * LZ4_MAX_RATIO);
    at += size + (blockChecksums ? 4 : 0);
  }
}

// --- zstd: frames walked before decoding, then streamed under the budget

export function unzstd(buffer: Buffer, budget: number): Buffer {
  checkZstdFrames(buffer, budget);
  const parts: Uint8Array[] = [];
  let total = 0;
  const stream = new ZstdStream((chunk) => {
    total += chunk.length;
    if (total > budget) throw new BatchTooLargeError('zstd', `${buffer.length} bytes unpack past the budget`);
    parts.push(chunk);
  });
  try {
    stream.push(buffer, true);
  } catch (err) {
    if (err instanceof BatchTooLargeError) throw err;
    throw new BatchUnreadableError('zstd', (err as Error).message);
  }
  return Buffer.concat(parts, total);
}

/**
 * Walks the zstd frames by their headers, without decoding (RFC 8878 §3.1), and refuses a
 * window or a stated size past the budget: the decoder keeps up to twice a frame's window of
 * history. fzstd itself allocated the window a frame declares up front (up to 2 GiB), moved
 * all of it for every block, and allocated 128 KiB for every compressed block whatever its
 * output: a 37 KB batch of one-byte blocks under a 64 MiB window blocked the event loop for
 * minutes, the member left the group, and read the batch again on rejoining. Patched
 * (patches/fzstd+0.1.1.patch): the history grows with the output and moves once per window
 * of it, and compressed blocks are decoded into one shared buffer, so the work follows the
 * batch's bytes and what they unpack to.
 */
function checkZstdFrames(data: Buffer, budget: number): void {
  let at = 0;
  while (at < data.length) {
    if (at + 4 > data.length) throw new BatchUnreadableError('zstd', 'a frame is cut off');
    const magic = data.readUInt32LE(at);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      // A skippable frame: its size follows.
      if (at + 8 > data.length) throw new BatchUnreadableError('zstd', 'a frame is cut off');
      at += 8 + data.readUInt32LE(at + 4);
      continue;
    }
    if (magic !== 0xfd2fb528) throw new BatchUnreadableError('zstd', 'no zstd frame magic');
    at = checkZstdFrame(data, at + 4, budget);
  }
}

function checkZstdFrame(data: Buffer, start: number, budget: number): number {
  const descriptor = data[start];
  if (descriptor === undefined) throw new BatchUnreadableError('zstd', 'a frame header is cut off');
  const sizeFlag = descriptor >> 6;
  const singleSegment = (descriptor & 0x20) !== 0;
  const checksum = (descriptor & 0x04) !== 0;
  let at = start + 1;
  let window = 0;
  if (!singleSegment) {
    const exponent = (data[at] ?? 0) >> 3;
    const base = 2 ** (10 + exponent);
    window = base + (base / 8) * ((data[at] ?? 0) & 7);
    at += 1;
  }
  at += [0, 1, 2, 4][descriptor & 3] as number;
  const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][sizeFlag] as number;
  if (at + sizeBytes > data.length) throw new BatchUnreadableError('zstd', 'a frame header is cut off');
  let stated: number | undefined;
  if (sizeBytes === 1) stated = data[at] as number;
  else if (sizeBytes === 2) stated = data.readUInt16LE(at) + 256;
  else if (sizeBytes === 4) stated = data.readUInt32LE(at);
  else if (sizeBytes === 8) stated = Number(data.readBigUInt64LE(at));
  at += sizeBytes;
  if (singleSegment) window = stated ?? 0;
  if (window > budget) throw new BatchTooLargeError('zstd', `a frame's window is ${window} bytes`);
  if (stated !== undefined && stated > budget) throw new BatchTooLargeError('zstd', `a frame states ${stated} bytes`);
  for (;;) {
    if (at + 3 > data.length) throw new BatchUnreadableError('zstd', 'a block header is cut off');
    const header = (data[at] as number) | ((data[at + 1] as number) << 8) | ((data[at + 2] as number) << 16);
    at += 3;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw new BatchUnreadableError('zstd', 'a block of the reserved type');
    at += type === 1 ? 1 : size; // an RLE block stores one byte
    if ((header & 1) === 1) break;
  }
  return at + (checksum ? 4 : 0);
}
