/**
 * The bounded decompressors kafkajs reads compressed batches with (src/pipeline/compression.ts):
 * each codec unpacks what real producers write, refuses a batch past its byte or record
 * budget before it takes the memory, and names bytes its codec cannot have written. The real
 * Java client's batches of each codec go through `hunt ingest` in compressed-batches.test.ts.
 */
import zlib from 'node:zlib';
import lz4 from 'lz4js';
import snappy from 'snappyjs';
import { describe, expect, it } from 'vitest';
import { BatchTooLargeError, BatchUnreadableError, boundedCodecs, MAX_RECORDS_PER_BATCH, unreadableReason } from '../../src/pipeline/compression';

const text = Buffer.from(Array.from({ length: 100 }, (_, i) => `${JSON.stringify({ eventId: `e${i}`, type: 'player.joined' })}\n`).join(''));
const codecs = boundedCodecs();
/** A budget of 4 MB, for bombs small enough to keep in the test. */
const small = boundedCodecs(4_000_000);

// Written by the zstd command-line tool: `text` (content size stated, checksum), and 5 MB
// of zeros from standard input (no size stated, a 2 MiB window).
const ZSTD_TEXT = Buffer.from(
  'KLUv/WT6DhUFAKKIGRmAxcUG0UUT6jSG9iVTVJ1EdvfOeKw6sJnCqqqqqqqZmZmZmYiIiIiId3d3d3dmZmZmZlVVVVVV////v23btk1EREREmnhWNwkG5lgEsUgQAHY5KJIxZpNFmcEUdow5DAqyATsCAWSoIfz6fwfQG9UBEvgRBP4RBF7/7/f9vu/l+77f5/t8H3cm595MzZ2ZmOtlWu6/MgqUAZhcEQtAqnR5jjE=',
  'base64',
);
const ZSTD_ZEROS_5MB = Buffer.from(
  'KLUv/QRYVAAAEAAAAQD7/znAAgIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAACABAAAgAQAAIAEAADWgIAtsHVPw==',
  'base64',
);

/** Snappy in the framing of Java's xerial library: magic, two versions, then length-prefixed raw blocks. */
function xerial(...blocks: Buffer[]): Buffer {
  const header = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]);
  return Buffer.concat([header, ...blocks.map(lengthPrefixed)]);
}

function lengthPrefixed(block: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeInt32BE(block.length);
  return Buffer.concat([length, block]);
}

const snappyRaw = (bytes: Buffer) => Buffer.from(snappy.compress(bytes));
const lz4Frame = (bytes: Buffer) => Buffer.from(lz4.compress(bytes));

describe('each codec unpacks what producers write', () => {
  it('gzip', async () => {
    expect((await codecs.gzip.decompress(zlib.gzipSync(text))).equals(text)).toBe(true);
  });

  it('snappy, raw and in xerial chunks (the Java client)', async () => {
    expect((await codecs.snappy.decompress(snappyRaw(text))).equals(text)).toBe(true);
    const halves = [text.subarray(0, 1000), text.subarray(1000)];
    expect((await codecs.snappy.decompress(xerial(...halves.map(snappyRaw)))).equals(text)).toBe(true);
  });

  it('lz4 frames', async () => {
    expect((await codecs.lz4.decompress(lz4Frame(text))).equals(text)).toBe(true);
  });

  it('zstd frames, with and without a stated size, several in a row', async () => {
    expect((await codecs.zstd.decompress(ZSTD_TEXT)).equals(text)).toBe(true);
    expect((await codecs.zstd.decompress(ZSTD_ZEROS_5MB)).equals(Buffer.alloc(5_000_000))).toBe(true);
    expect((await codecs.zstd.decompress(Buffer.concat([ZSTD_TEXT, ZSTD_TEXT]))).equals(Buffer.concat([text, text]))).toBe(true);
  });
});

describe('a batch past the budget is refused as too large', () => {
  const zeros = Buffer.alloc(5_000_000);

  it('gzip, once it unpacks past the budget', async () => {
    await expect(small.gzip.decompress(zlib.gzipSync(zeros))).rejects.toThrow(BatchTooLargeError);
  });

  it('snappy, from the length a block states, before unpacking', async () => {
    await expect(small.snappy.decompress(snappyRaw(zeros))).rejects.toThrow(/a block states 5000000 bytes/);
    const quarter = zeros.subarray(0, 1_250_000);
    await expect(small.snappy.decompress(xerial(...[1, 2, 3, 4].map(() => snappyRaw(quarter))))).rejects.toThrow(BatchTooLargeError);
  });

  it('lz4, once it unpacks past the budget', async () => {
    await expect(small.lz4.decompress(lz4Frame(zeros))).rejects.toThrow(BatchTooLargeError);
  });

  it('zstd, from a window past the budget before decoding, and while streaming', async () => {
    await expect(boundedCodecs(1_000_000).zstd.decompress(ZSTD_ZEROS_5MB)).rejects.toThrow(/a frame's window is 2097152 bytes/);
    await expect(small.zstd.decompress(ZSTD_ZEROS_5MB)).rejects.toThrow(/unpack past the budget/);
    // A single-segment frame that states 2^40 bytes (its window is that size).
    const stated = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0]);
    await expect(codecs.zstd.decompress(stated)).rejects.toThrow(/a frame's window is 1099511627776 bytes/);
  });

  it('any codec, for more records than a batch may hold', async () => {
    await expect(codecs.zstd.decompress(ZSTD_TEXT, MAX_RECORDS_PER_BATCH + 1)).rejects.toThrow(`it states ${MAX_RECORDS_PER_BATCH + 1} records`);
    await expect(codecs.gzip.decompress(zlib.gzipSync(text), MAX_RECORDS_PER_BATCH + 1)).rejects.toThrow(BatchTooLargeError);
    expect((await codecs.zstd.decompress(ZSTD_TEXT, MAX_RECORDS_PER_BATCH)).equals(text)).toBe(true);
  });
});

describe('bytes a codec cannot have written', () => {
  const garbage = Buffer.from('not compressed at all, just text of some length');

  it.each(['gzip', 'snappy', 'lz4', 'zstd'] as const)('%s: refused as unreadable, naming the codec', async (codec) => {
    await expect(codecs[codec].decompress(garbage)).rejects.toThrow(BatchUnreadableError);
    await expect(codecs[codec].decompress(garbage)).rejects.toThrow(new RegExp(`^its ${codec} record batch cannot be unpacked`));
  });

  it('cut-off frames are unreadable too', async () => {
    await expect(codecs.zstd.decompress(ZSTD_TEXT.subarray(0, 30))).rejects.toThrow(BatchUnreadableError);
    await expect(codecs.lz4.decompress(lz4Frame(text).subarray(0, 20))).rejects.toThrow(BatchUnreadableError);
    await expect(codecs.snappy.decompress(xerial(snappyRaw(text)).subarray(0, 40))).rejects.toThrow(BatchUnreadableError);
  });

  it('map to the contract reasons: too_large past the budget, unreadable otherwise', () => {
    const batch = { firstOffset: '0', lastOffset: '9', count: 10, codecId: 4 };
    expect(unreadableReason({ ...batch, error: new BatchTooLargeError('zstd', 'x') })).toBe('too_large');
    expect(unreadableReason({ ...batch, error: new BatchUnreadableError('zstd', 'x') })).toBe('unreadable');
    expect(unreadableReason({ ...batch, error: new Error('ZSTD compression not implemented') })).toBe('unreadable');
  });
});
