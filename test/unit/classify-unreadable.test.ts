import { describe, expect, it } from 'vitest';
import { classifySlice, MAX_KEPT_BYTES } from '../../src/pipeline/classify';
import { rowCount } from '../../src/store/hot-path/event-rows';
import { BatchUnreadableError, codecName } from '../../src/pipeline/compression';

/** The stand-in record patches/kafkajs+2.2.4.patch makes of a compressed batch it could not unpack. */
function standIn(compressed: Buffer, codecId: number) {
  const error = new BatchUnreadableError(codecName(codecId), 'invalid magic number');
  return { offset: '19', key: null, value: compressed, timestamp: '0', unreadable: { error, firstOffset: '10', lastOffset: '19', count: 10, codecId } };
}

describe('a compressed batch that could not be unpacked', () => {
  it('is one reject under its last offset that keeps the compressed records and says so', () => {
    const compressed = Buffer.from('not really zstd');
    const { rejected, rows } = classifySlice('hunt.events', 3, [standIn(compressed, 4)], new Date());
    expect(rowCount(rows)).toBe(0);
    expect(rejected).toEqual([
      {
        topic: 'hunt.events',
        partition: 3,
        offset: '19',
        key: null,
        value: compressed,
        reason: 'unreadable',
        detail:
          'the records at offsets 10-19 (10 stated) are rejected together: its zstd record batch cannot be unpacked: invalid magic number; ' +
          "the value kept is the batch's compressed records (zstd, its 15 bytes)",
      },
    ]);
    // A copy, not a view of the fetch response (which must not stay alive until the commit).
    compressed.fill(0);
    expect(rejected[0]?.value?.toString()).toBe('not really zstd');
  });

  it('keeps at most MAX_KEPT_BYTES of a larger batch, and says how much of it', () => {
    const compressed = Buffer.alloc(2 * MAX_KEPT_BYTES, 0x28);
    const [reject] = classifySlice('hunt.events', 0, [standIn(compressed, 1)], new Date()).rejected;
    expect(reject?.value?.length).toBe(MAX_KEPT_BYTES);
    expect(reject?.detail).toMatch(new RegExp(`\\(gzip, the first ${MAX_KEPT_BYTES} of its ${2 * MAX_KEPT_BYTES} bytes\\)$`));
  });

  it('names a codec id Kafka does not define as such', () => {
    expect(codecName(7)).toBe('codec 7 (not one Kafka defines)');
  });
});
