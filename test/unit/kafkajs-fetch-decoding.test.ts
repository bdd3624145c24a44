/**
 * What kafkajs 2.2.4 does with one partition's fetch, as installed with patches/: the record
 * batches of the response decoded into records. Three ways any producer to the input topic
 * could stop or sink the consumer, before the patch:
 * - headers built with an object spread per header: a record of thousands of small headers
 *   took minutes to decode, blocking the event loop past the session timeout, again after
 *   every rejoin; and built at all past a few dozen: a 64 KB gzip batch of a record with 33
 *   million empty headers took the process past its heap limit;
 * - records appended with push(...batch): a batch of over about 120,000 records overflowed
 *   the stack, a crash kafkajs does not restart from, and again on every restart;
 * - every compressed batch of the fetch unpacked before any was handed over: each within its
 *   own 64 MiB budget, but a few hundred KB of zstd bombs held gigabytes at once; bounded per
 *   partition first, then (a fetch of many partitions) over the whole response too.
 */
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { useBoundedCodecs } from '../../src/pipeline/compression';

const require = createRequire(import.meta.url);
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0');
const Record = require('kafkajs/src/protocol/recordBatch/record/v0');
const Encoder = require('kafkajs/src/protocol/encoder');
const Decoder = require('kafkajs/src/protocol/decoder');
const decodeMessages = require('kafkajs/src/protocol/requests/fetch/v4/decodeMessages') as (decoder: unknown) => Promise<DecodedRecord[]>;

interface DecodedRecord {
  offset: string;
  value: Buffer | null;
  headers: Record<string, Buffer | Buffer[]>;
}

interface RecordSpec {
  value: Buffer | null;
  headers?: Record<string, Buffer | Buffer[]>;
}

/** One record batch as the broker sends it, starting at `firstOffset`. */
async function batch(firstOffset: number, records: RecordSpec[], compression = kafkajs.CompressionTypes.None): Promise<Buffer> {
  const encoded = records.map((r, i) => Record({ offsetDelta: i, timestampDelta: 0, key: null, value: r.value, headers: r.headers ?? {} }));
  const bytes = Buffer.from((await RecordBatch({ compression, records: encoded, lastOffsetDelta: records.length - 1, firstTimestamp: 1, maxTimestamp: 1 })).buffer);
  bytes.writeBigInt64BE(BigInt(firstOffset), 0);
  return bytes;
}

/** One v2 record by hand (null key, `value`, `headers` headers of empty name and value), with its length in front. */
function recordWithEmptyHeaders(value: Buffer, headers: number, offsetDelta: number): Buffer {
  const body = new Encoder().writeInt8(0).writeVarLong(0).writeVarInt(offsetDelta).writeVarInt(-1).writeVarInt(value.length).writeBuffer(value).writeVarInt(headers);
  const headerBytes = Buffer.alloc(headers * 2); // each header: name length 0, value length 0
  return Buffer.concat([new Encoder().writeVarInt(body.buffer.length + headerBytes.length).buffer, body.buffer, headerBytes]);
}

/** A record batch of records already encoded (`count` of them, in `raw`), starting at `firstOffset`. */
async function rawBatch(firstOffset: number, raw: Buffer, count: number, compression = kafkajs.CompressionTypes.None): Promise<Buffer> {
  const bytes = Buffer.from((await RecordBatch({ compression, records: [new Encoder().writeBuffer(raw)], lastOffsetDelta: count - 1, firstTimestamp: 1, maxTimestamp: 1 })).buffer);
  bytes.writeBigInt64BE(BigInt(firstOffset), 0);
  // The batch's record count is what the encoder saw (one): set the real one.
  bytes.writeInt32BE(count, 57);
  return bytes;
}

/** One partition's record set in a fetch response, decoded as kafkajs's consumer does. */
function decodeFetch(batches: Buffer[]): Promise<DecodedRecord[]> {
  return decodeFetchOf([batches]).then(([records]) => records ?? []);
}

/** Several partitions' record sets in one fetch response, decoded in order from one decoder, as the response's partitions are. */
async function decodeFetchOf(partitions: Buffer[][]): Promise<DecodedRecord[][]> {
  const encoder = new Encoder();
  for (const batches of partitions) {
    const set = Buffer.concat(batches);
    encoder.writeInt32(set.length).writeBuffer(set);
  }
  const decoder = new Decoder(encoder.buffer);
  const decoded: DecodedRecord[][] = [];
  for (let i = 0; i < partitions.length; i++) decoded.push(await decodeMessages(decoder));
  return decoded;
}

describe('kafkajs decoding a fetch (patched)', () => {
  it('decodes a record of 100,000 headers quickly, keeping the first 64 (repeated names in order)', async () => {
    const headers: Record<string, Buffer | Buffer[]> = { repeated: [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')] };
    for (let i = 0; i < 100_000; i++) headers[`h${i}`] = Buffer.alloc(0);
    // Before the first patch this one record took hours (quadratic); the test would time out.
    const [record] = await decodeFetch([await batch(0, [{ value: Buffer.from('{}'), headers }])]);
    expect(Object.keys(record!.headers)).toHaveLength(62);
    expect((record!.headers.repeated as Buffer[]).map(String)).toEqual(['a', 'b', 'c']);
    expect(String(record!.value)).toBe('{}');
  });

  it('steps over millions of headers in a small gzip batch without building them, and reads the next record whole', async () => {
    // 4 million empty headers: 8 MB unpacked, a few KB of gzip. Built as objects, as before the
    // patch, they took some 650 MB of heap (33 million, still a 64 KB batch, took the process
    // past its heap limit on every restart).
    const raw = Buffer.concat([recordWithEmptyHeaders(Buffer.from('{"first":1}'), 4_000_000, 0), recordWithEmptyHeaders(Buffer.from('{"second":2}'), 1, 1)]);
    const heapBefore = process.memoryUsage().heapUsed;
    const records = await decodeFetch([await rawBatch(0, raw, 2, kafkajs.CompressionTypes.GZIP)]);
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    expect(records.map((r) => String(r.value))).toEqual(['{"first":1}', '{"second":2}']);
    expect(records[0]!.headers['']).toHaveLength(64);
    expect(heapGrowth).toBeLessThan(100 * 1024 * 1024);
  });

  it('decodes a batch of 150,000 records', async () => {
    const records = await decodeFetch([await batch(0, Array.from({ length: 150_000 }, () => ({ value: null })))]);
    expect(records).toHaveLength(150_000);
    expect(records.at(-1)?.offset).toBe('149999');
  });

  describe('compressed batches that unpack to a lot', () => {
    useBoundedCodecs();
    const GZIP = kafkajs.CompressionTypes.GZIP;
    const big = (mib: number) => ({ value: Buffer.alloc(mib * 1024 * 1024, 0x78) });

    it('stop being unpacked past 32 MiB in one fetch, after a whole batch: the next fetch starts after the last record', async () => {
      const bombs = await Promise.all([0, 1, 2, 3, 4].map((i) => batch(i, [big(17)], GZIP)));
      expect(Buffer.concat(bombs).length).toBeLessThan(512 * 1024); // what one partition's fetch may return
      const records = await decodeFetch(bombs);
      expect(records.map((r) => r.offset)).toEqual(['0', '1']);
    });

    it('never stop within the first batch, which may end before the fetched offset', async () => {
      const records = await decodeFetch([await batch(0, [big(40)], GZIP), await batch(1, [{ value: Buffer.from('{}') }]), await batch(2, [{ value: Buffer.from('{}') }])]);
      expect(records.map((r) => r.offset)).toEqual(['0', '1']);
    });

    it('share one budget over a fetch\'s partitions: partitions reached once it is spent are left for the next fetch', async () => {
      const twoBombs = (first: number) => Promise.all([first, first + 1].map((i) => batch(i, [big(17)], GZIP)));
      const decoded = await decodeFetchOf([await twoBombs(0), await twoBombs(10), await twoBombs(20), await twoBombs(30)]);
      // 34 MiB, then 68 past the fetch's 64 MiB: the last two are not decoded at all.
      expect(decoded.map((records) => records.map((r) => r.offset))).toEqual([['0', '1'], ['10', '11'], [], []]);
    });

    it('and one budget of records: tiny records never reach a byte budget, but each is an object', async () => {
      const many = (first: number) => batch(first, Array.from({ length: 120_000 }, () => ({ value: null })));
      const decoded = await decodeFetchOf([[await many(0)], [await many(0)], [await many(0)]]);
      expect(decoded.map((records) => records.length)).toEqual([120_000, 120_000, 0]);
    });

    it('are all unpacked while the fetch stays within the budget', async () => {
      const batches = await Promise.all(Array.from({ length: 10 }, (_, i) => batch(i * 3, [big(1), big(1), { value: Buffer.from('{}') }], GZIP)));
      const records = await decodeFetch(batches);
      expect(records).toHaveLength(30);
      expect(records.at(-1)?.offset).toBe('29');
    });
  });
});
