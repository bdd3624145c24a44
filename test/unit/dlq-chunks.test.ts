import { describe, expect, it } from 'vitest';
import type { Producer, ProducerRecord } from 'kafkajs';
import { chunksWithin, createDlqSender, dlqMessage, estimatedSize, kafkaErrorTypes, MAX_SEND_BYTES } from '../../src/ingest/dlq';
import { createLogger } from '../../src/log';
import type { RejectedRecord } from '../../src/store/hot-path/quarantine';

const reject = (bytes: number, offset: number): RejectedRecord => ({
  topic: 'hunt.events',
  partition: 0,
  offset: String(offset),
  key: Buffer.from('hunt-1'),
  value: Buffer.alloc(bytes, 0x78),
  reason: 'too_large',
  detail: 'x'.repeat(1024),
});

describe('DLQ sends', () => {
  it('split a burst of 64 KiB rejects so each send fits the topic limit, in order', () => {
    const messages = Array.from({ length: 40 }, (_, i) => dlqMessage(reject(64 * 1024, i)));
    const budget = 1_048_588 - 1024;
    const chunks = chunksWithin(messages, budget);
    expect(chunks.length).toBeGreaterThan(2);
    for (const chunk of chunks) expect(chunk.reduce((n, m) => n + estimatedSize(m), 0)).toBeLessThanOrEqual(budget);
    expect(chunks.flat().map((m) => m.headers?.['source.offset'])).toEqual(messages.map((m) => m.headers?.['source.offset']));
  });

  it('send a record larger than the budget on its own', () => {
    const chunks = chunksWithin([dlqMessage(reject(10, 0)), dlqMessage(reject(2_000_000, 1)), dlqMessage(reject(10, 2))], 1_000_000);
    expect(chunks.map((c) => c.length)).toEqual([1, 1, 1]);
  });

  it('estimate no less than the bytes a record carries', () => {
    const m = dlqMessage(reject(5000, 7));
    const carried = 5000 + 'hunt-1'.length + Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + String(v).length, 0);
    expect(estimatedSize(m)).toBeGreaterThan(carried);
  });

  it('carry at most 16 MiB each, however large a record the topic allows (the broker closes the connection past its request limit)', async () => {
    // A stand-in producer that records what each send carries; the broker's own behaviour past
    // socket.request.max.bytes (100 MiB) is not something a test should provoke on a shared broker.
    const sends: number[] = [];
    const producer = { send: async (record: ProducerRecord) => void sends.push(record.messages.reduce((n, m) => n + estimatedSize(m), 0)) } as unknown as Producer;
    const sender = createDlqSender(producer, 'dlq', 110 * 1024 * 1024, createLogger({ logLevel: 'fatal' }));
    await sender.send(Array.from({ length: 105 }, (_, i) => reject(1024 * 1024, i)));
    expect(sends.length).toBeGreaterThanOrEqual(7);
    for (const bytes of sends) expect(bytes).toBeLessThanOrEqual(MAX_SEND_BYTES);
    expect(sends.reduce((a, b) => a + b, 0)).toBeGreaterThan(105 * 1024 * 1024);
  });

  it("find Kafka's error type inside what kafkajs wraps after its retries", () => {
    const refused = Object.assign(new Error('Message too large'), { type: 'MESSAGE_TOO_LARGE' });
    const exhausted = Object.assign(new Error('retries exceeded'), { name: 'KafkaJSNumberOfRetriesExceeded', originalError: refused });
    expect(kafkaErrorTypes(exhausted)).toEqual(['MESSAGE_TOO_LARGE']);
    expect(kafkaErrorTypes(new Error('no type'))).toEqual([]);
  });
});
