import { describe, expect, it } from 'vitest';
import type { KafkaMessage } from 'kafkajs';
import { kafkaChunks } from '../../src/batch/backfill-job';
import { sliceEnd } from '../../src/pipeline/record-slices';

const record = (valueBytes: number, keyBytes = 2) => ({ key: Buffer.alloc(keyBytes), value: Buffer.alloc(valueBytes) }) as KafkaMessage;

describe('sliceEnd', () => {
  it('cuts at the record count when records are small', () => {
    const messages = Array.from({ length: 600 }, () => record(600));
    expect(sliceEnd(messages, 0, 250, 1024 * 1024)).toEqual({ end: 250, bytes: 250 * 602 });
    expect(sliceEnd(messages, 500, 250, 1024 * 1024)).toEqual({ end: 600, bytes: 100 * 602 });
  });

  it('cuts at the byte budget when records are large, passing it by at most one record', () => {
    // 50,000 records of 256 KiB (a backfill chunk's count) would be 12.5 GiB by count alone.
    const messages = Array.from({ length: 200 }, () => record(256 * 1024, 0));
    expect(sliceEnd(messages, 0, 50_000, 16 * 1024 * 1024)).toEqual({ end: 64, bytes: 64 * 256 * 1024 });
    const odd = [record(100, 0), record(10 * 1024 * 1024, 0), record(100, 0)];
    expect(sliceEnd(odd, 0, 50_000, 1024)).toEqual({ end: 2, bytes: 100 + 10 * 1024 * 1024 });
  });

  it('takes one record however large, and counts null keys and values as empty', () => {
    expect(sliceEnd([record(64 * 1024 * 1024)], 0, 250, 1024)).toEqual({ end: 1, bytes: 64 * 1024 * 1024 + 2 });
    expect(sliceEnd([{ key: null, value: null } as KafkaMessage, record(10)], 0, 250, 1024)).toEqual({ end: 2, bytes: 12 });
  });
});

describe('a Kafka backfill\'s chunks', () => {
  it('end at chunkSize records or 16 MiB of keys and values, and cover the fetch in order', () => {
    const messages = Array.from({ length: 200 }, (_, i) => ({ ...record(256 * 1024, 0), offset: String(i) }) as KafkaMessage);
    const chunks = [...kafkaChunks(messages, 50_000)];
    for (const chunk of chunks) expect(chunk.reduce((sum, m) => sum + (m.value?.length ?? 0), 0)).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(chunks.flat().map((m) => m.offset)).toEqual(messages.map((m) => m.offset));
    expect(chunks.map((c) => c.length)).toEqual([64, 64, 64, 8]);
    expect([...kafkaChunks(Array.from({ length: 25 }, () => record(100)), 10)].map((c) => c.length)).toEqual([10, 10, 5]);
  });
});
