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

// Written by the zstd command-line tool with a 1 KiB window (`-19 --zstd=wlog=10
// --no-content-size`): `windowed`, 20 KB, in blocks of at most 1 KiB whose matches reach
// back into the blocks before, so the decoder's history is moved forward many times.
const windowed = Buffer.from(Array.from({ length: 1000 }, (_, i) => `{"i":${i},"k":"${(i * 7919) % 997}"}\n`).join(''));
const ZSTD_WINDOWED = Buffer.from(
  'KLUv/QQAHAYAUs4eEdBXDjopWEqSlDIlmbIZQjECez0XIltbF67vNosT+sgMa6k2aqGb9WyjaA3drGIVXT7ye1zZJGgkci2GrPK6lF3iPB97OJUaiRLptLqC2795Fck17PyvY4pMGCQjxlr96qqb7B' +
  'mO/KEOS6SK/QCHQAQGgUJAEIMAIWAIbKgR0C3f7+CtBhAST+oBULwJAaPxauVWgO5WtnutChoIPL5k3HRJFNMfIHuplRIbfBjo3pZBC9UsfyT11cVo3dxqQKoCxAQAE84YgoqooiD5xH5H3dgmUTOG' +
  'yQWLEbvI51LiUsxDY5fT1UgJ0afRFX/8Na8hSU10pq81ZRPWyMxGsfqLa24Sz8TINNSyZFUs+egPss+tPqMhR4qOSukidbl5NY4x56ypC9GcRlyOa/yzSvjZTb9lep5zQONWge6m7C18EScGZvoHgb' +
  '0PSA/dShEBPqZa3BbQnZV9L0sSwS0MBQDzzxsBit+bl0vyalwy219NU/wQekZmYcNRfUlc7U2dZ1pBrodasqSnYke+7o+KL7GV0Iyk5MiKlhKp+CJCl/LwZMYhwjmjpkhCxJ6Gc5kVLzcXmiRrvCw4' +
  '3ydmLSY0GpmV9VbtSizzzdGzPSg2Qw9hBQJnuBAQ8gEQEIEYfTAnENmfHZPR3SOTlQ6g/NaOSezPhslKDcs3mXs5LZo7tQEKCPQEAOOPHPxj86NiFZ5RkJw40TEiDblIhMug8KLjCI7zF03dQnSe5m' +
  '/5E+83lwv5qJ1k8X6vmVUVQuWRKbKuU1sjlpKbFZ4VBUV16DRWUVERWT6030SXHhOaGUnIURSDSOTTS81cmgrPeOwhp3MamRHiyGkTrpgdAmf4EIyBfN5C0zCZc20a9mcFw8dwTOZdGyZzrq000I7M' +
  'vTZG5k6bWCAIBAUAN5AeHAAdABwAYQophOzIODZY1M/iGm/aO7MJ8mSoC5aMqLjKtyQTHpGxJTgVohGpEGWnSbVCHD85L5LE03BkpnxlFObQ+1V1qKgin/J3wy3FpJ2xI9ciRi1y4aXkbYFBoBAQcI' +
  'o2lsXwu1+WJ4QsI+NgbaLWFYt309WZHQFm/C6c5Nw1YzLuujRQjsm8a8NkzrWV5qYck3nXhsmcazPVBCwFAEeQHx4AHgAdADRVpLSLULUkh0ccB33zGZoaEaKJ0wy1PI13OJcZA+KquKmoM9Ug14Za' +
  'tZIyFYvyFetR72liRTIjCnKIKC9aTCtCJP5zXg/SieaV+fv6KuUO4Tmyf40P9SUBAQPgEHBMxhn3cRtiTEQecamglqLhiY0dtWmYRoJCjGb8wqHcNWMy7g1qSds1h13XhsmcaysNtCNzr42RudPGpZ' +
  'HGCjQFAAdQHh0AHQAcACPDWk1TS4qFL5PTGSUoGEMfrWqlok0+k7pX7QgBtLmUpmRCJFU04paF8Yr4Ih9laCKykPhOKosNIS5CRYd8lnqY+jZW3Yxa49RElyLtS6TTshJeYxwNAYHntc6UMhLCiZEN' +
  'rTGl3hOXq0x2Z8wg+6Z6VuJn+CBCMfobE9kfG5PSDRlk3JjM/tSYjO6upRnjhvG2a8YwfuvSQKkAOghUBQAX0B4eAB4AHABS5JaI4aHbptmUhEYohEhUNGoraPGP+DU1GtMMZYWdfUHxMr28qiIV1f' +
  'kpqbumLYlJxYxF46rEqImcqgIRb9SXoDFKi8kiWrXfZZ0h9Fvms/pC7UMspzLfh8CMMyF6IdJRiawtt/BWdsybB2kqTqKYoglpOQJn+CBCMJAPwzW+T5fV7NoTKSuDudy+ejpc35VB5i3rfJ8uq9mf' +
  'tTXLbAMEELwEANOPGxMhNGSZ6eoZtVO0jMscdjb/xIzpllU5qMjEj1u323oxcXm0x5nE8CnvlFSlpUZ4SrbbTTsaaZFYF61sRf+61C+ZkQiNhMxCtUpLkYVQyjLxGkLqebo4ZaJ0hhFkkqnsSjgqsv' +
  'ix9aD7MVa7RwMEZ/xPh+s7T6ch+5LqO08n87u1rAE7i/jj+t3T0vzaLWuD+NNnFgjEBADjzxuUryW1tbR6Z7Y9brrPyIbESdEWrRi9HvYrOorRRHEO1xosJX4yxrKQNcJB/Ymut0xfZ14f36aeK/mn' +
  '+OH31uPSV8SqyKPqODWiqygtl0ixZf1djR0lm1PQFBGJqEVDa5nqVaov5JFIo3NBU/tIWQFn/MM1vk+XNfW1fartn7eg7x6dpnYIre8+ncbvbrKm9mTxx21/IKwEAKMPG1uDavoxXcMyzWVm5uMRUy' +
  'dWMjTFKb9xPWa962V7ZI7jD+2h1FIijpamd64d3uatmapJVBZNL+XOq7UvlbFBK3HR1i4rS+oksWWEq+XTytAiUqZEZ0KfkJrOrYo1RTQ/dN1ky184HinjGMQgBWf8T4frO097VWPXTvN3N1nz+uR1' +
  'ouPT8fpu02n87qqNdXq5QhQExAQA488bUtLvSDv4mG9makKiRdGMpLy+uvFlG1ezmYux9riwYk4KsUzE6qBpo7TEyoySWfgTMTT9j6rPFF34uet+tKfL6/Eb9xrGTXmxpOpSqnmnxHbFpkUzUiWxVr' +
  'QqqSi/TvaLOKLP0HAmqZWiFKKTVMsoZ/zDNb5PN+NHdTqu3z06zRqYo/a13cXtr6fF9bWHVx/jZbW7xA28BACjjxukhU4mjcxIPkFh+lBUTadoxs8M3VPS8WXocR7czDBGKHeUlElK7juebVdM7Rkx' +
  'SfSJ5pEKy+sdvxqj0kzLuau1JZT6ZGlZH43O9CJ0SZRJSGakH8tMlYoS8RSF/GToIZdzXhSPGOOQhmYp5UqEFWf8T4frO8N4kdPL6vany3H2c7SRytfT47rd09L8WmdR+d1dgwoI3AQA4w8cgdfmxJ' +
  'QyIwwSSURjpYJ7fdTXiuaZkfNO60Yok5MLy0bRWKeP0RVFprDMBD+OlxoTJSFTjOAXRI8gkr+vz6NXcO6hT0p/EvlIeXn3sOMU8+pM1UhURTRlKRdfremlzppZCRcVtRMJi3oSzTJUUZOnpWf8wzW+' +
  'hwaGL6l6cly3e1qanyH1CdNlze/zZLX1k99VDqHNy+X2whvcBADTTxwCIpEZio+JSqVGCW2KVPuI6EGWD1/zjmaCMzL0BKVDJDKVcvZuqo5xzM2Z8kfkIRqLlB2vmnox0Z15XLhor4VVntRXphN1Zd' +
  'oGLSUyW5l1n2iVLo4q4RTJ9xGiW0YqcpHwKBScdBgyylkkRUuJfId0CGf8T4freV6U1nefTuN3N1l87zxEZU9n82u3LPN9JbfS+rxa7TcVBGwFAAfQHh4AHAAdABV/1Yv6qqGSmQrORbRWhVI7WVVZ' +
  'ORrF6elz0ZADAVEdw8EFhxH1yT8kdZHS451T7Tem34y8RryJdkqzRr1Nu5plJnOU2V4Tm9JDoipiioL2iaI7Ko1dAgbAIRAzRRoRSzSclFlVZfVCk5zxW3BonwhrcdKoEmf4EBABGMgHwzXkX/QQ2r' +
  'xcbl89Ha7vymot2/1K+m7TafzmdoVDaPNyuX01BhggTAUAB9AeHQAcAB0A+1r0qMglXkIdSYMjG1pqUjGJCKWUVydTh0jMWYGrKRS/SE9llmg4pi/N1ZKpk5lWjetSyyjpXewEk9JUdca1hzGde2Rm' +
  'xBGiTUjFUNVdfbnkzbg22xSBQkAQ1dJpUUXlIvI+VHQTpfQSmo4kwVEMg2jyKUlNZ/ggQjH6G5Ora/8kcy+nRXOnhc9dh5BpYzK/amMi+ytpY8zl9GjOKwIMCCwFALOPGzQpVoirzvdFEu/hbKbQyh' +
  'AKqUi2Mi4aLPfzXCOZds5sajwpdRElIxfXfTs9NnlUVbijYHDipmMmDSGRCCmDqovWEV/MX566R3QSzc/yp6qvXi58zE5bvLTXhFVVpHJlilHX3dbMUkJmhcyKagKDZ6gQEPHF0N0OEIyBfKQtxhN0' +
  'qZ2TV4ZcMdLK0HUqiwy5YqQbhF0j7Q2+nM7JK0OuGJdaCsQFADeQHx0AHAAfAB+0H0jfsQ+uN6OfXE5Scpbk1ZHXlsdU7hH5iPJBLwb8SsCP2nfrz+KT6XPm14Rfen+qjosq+zTobh2xDvr9GU+NjG' +
  'iCaIZYnlZ13suMUw7Mt8CcFvDJgAMUGAQKAYGUXSzuq8+jztNUkXREERwi09RJaSRCxZJcAWasIET0AdBX1mfwISM55FxpV9wld8ond8brhLPBrALLn94xYpwa3R8y9iMNVBoz5olpYpzU0BTFAQAj' +
  'RQmAQ0Cq/vf1oJPn3fzR+iLlLvKs7L/Ex33JXBVkKuJMtca1UqseIPxgFFFnSoqRZEQZUoYUXhz/Tt4=',
  'base64',
);

/**
 * A frame that declares a 64 MiB window and holds `blocks` RLE blocks of one byte each: 4
 * bytes of input a block. fzstd moved its whole window for every block, so 37 KB of such a
 * batch blocked ingest for minutes (patches/fzstd+0.1.1.patch).
 */
function rleBomb(blocks: number): Buffer {
  const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 16 << 3]);
  const body = Array.from({ length: blocks }, (_, i) => {
    const block = (1 << 3) | (1 << 1) | (i === blocks - 1 ? 1 : 0);
    return Buffer.from([block & 0xff, (block >> 8) & 0xff, block >> 16, 0x41]);
  });
  return Buffer.concat([header, ...body]);
}

/** A frame under a `2 ** windowLog` window of RLE blocks of the sizes given (one byte each). */
function rleFrame(windowLog: number, sizes: number[]): Buffer {
  const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, (windowLog - 10) << 3]);
  const body = sizes.map((size, i) => {
    const block = (size << 3) | (1 << 1) | (i === sizes.length - 1 ? 1 : 0);
    return Buffer.from([block & 0xff, (block >> 8) & 0xff, block >> 16, 0x41]);
  });
  return Buffer.concat([header, ...body]);
}

/** Bytes moved by copyWithin (how fzstd moves its history) while `run` runs. */
async function bytesMovedBy(run: () => Promise<unknown>): Promise<number> {
  const original = Uint8Array.prototype.copyWithin;
  let moved = 0;
  Uint8Array.prototype.copyWithin = function (this: Uint8Array, target: number, start: number, end?: number) {
    moved += Math.max(0, Math.min(end ?? this.length, this.length) - start);
    return original.call(this, target, start, end);
  };
  try {
    await run();
  } finally {
    Uint8Array.prototype.copyWithin = original;
  }
  return moved;
}

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

  it('zstd blocks whose matches reach back across blocks, through a small window', async () => {
    expect((await codecs.zstd.decompress(ZSTD_WINDOWED)).equals(windowed)).toBe(true);
    expect((await codecs.zstd.decompress(Buffer.concat([ZSTD_WINDOWED, ZSTD_TEXT, ZSTD_WINDOWED]))).equals(Buffer.concat([windowed, text, windowed]))).toBe(true);
  });
});

describe('zstd work follows what a batch holds, not the window its frames declare', () => {
  it('a thousand one-byte blocks under a 64 MiB window move no window at all', async () => {
    let out: Buffer = Buffer.alloc(0);
    const moved = await bytesMovedBy(async () => (out = await codecs.zstd.decompress(rleBomb(1000))));
    expect(out.equals(Buffer.alloc(1000, 0x41))).toBe(true);
    // Before: 1000 moves of 64 MiB. Now the history grows with the output and never fills.
    expect(moved).toBe(0);
  });

  it('tiny blocks after the history grew just past the window move no window either', async () => {
    // 1 MiB window: 512 KiB, then 512 KiB + 16 bytes, leave the history 16 bytes past the
    // window; the first patch then moved the whole window for each 16-byte block after.
    const window = 2 ** 20;
    const sizes = [window / 2, window / 2 + 16, ...Array.from({ length: 200 }, () => 16)];
    let out: Buffer = Buffer.alloc(0);
    const moved = await bytesMovedBy(async () => (out = await codecs.zstd.decompress(rleFrame(20, sizes))));
    expect(out.length).toBe(window + 16 + 200 * 16);
    expect(moved).toBeLessThan(window); // was 200 MiB
  });

  it('a long output moves its last window forward once per window of output', async () => {
    let out: Buffer = Buffer.alloc(0);
    const moved = await bytesMovedBy(async () => (out = await codecs.zstd.decompress(ZSTD_WINDOWED)));
    expect(out.equals(windowed)).toBe(true);
    // 20 KB through a 1 KiB window: about 20 moves of 1 KiB (before: one per block, 1 KiB each, too, so this bounds the new code only).
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThanOrEqual(windowed.length);
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
