/**
 * kafkajs 2.2.4 hashed message keys (its default partitioner's murmur2) with 64-bit Longs
 * whose running product it never truncated, so a key's hashing time grew with the square of
 * its length: a rejected record's 1 MB key, copied to the DLQ with its key, froze `hunt ingest`
 * for minutes. patches/ carries a 32-bit version. It must give the very hashes the Java client
 * and the old version gave, or records would land in other partitions: these are Kafka's own
 * test vectors (UtilsTest.testMurmur2) and long keys hashed with the old version. A 1 MB key
 * goes through the real producer in test/integration/dlq-limit.test.ts.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const murmur2 = createRequire(import.meta.url)('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer | string) => number;

function patterned(length: number, step: number, offset: number): Buffer {
  const key = Buffer.alloc(length);
  for (let i = 0; i < length; i++) key[i] = (i * step + offset) & 0xff;
  return key;
}

describe("kafkajs's murmur2, as patched", () => {
  it("gives the Java client's hashes", () => {
    expect(murmur2('21')).toBe(-973932308);
    expect(murmur2('foobar')).toBe(-790332482);
    expect(murmur2('a-little-bit-long-string')).toBe(-985981536);
    expect(murmur2('a-little-bit-longer-string')).toBe(-1486304829);
    expect(murmur2('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8')).toBe(-58897971);
    expect(murmur2(Buffer.from('abc'))).toBe(479470107);
  });

  it('gives the old version\'s hashes for long keys (computed with kafkajs 2.2.4 unpatched)', () => {
    expect(murmur2(patterned(1002, 31, 200))).toBe(140298696);
    expect(murmur2(patterned(65_537, 131, 7))).toBe(-1569313721);
  });
});
