/**
 * The dead-letter topic: every rejected record copied unchanged (same key, same value
 * bytes) with headers that say why, as CONTRACT.md specifies. Sent before the micro-batch
 * commits, so a reject is never passed over; a retry after a failed commit may send it
 * again (the DLQ is at-least-once; the quarantine table is exactly-once).
 */
import type { Producer } from 'kafkajs';
import type { RejectedRecord } from './classify';

export async function sendToDlq(producer: Producer, dlqTopic: string, records: readonly RejectedRecord[]): Promise<void> {
  if (records.length === 0) return;
  await producer.send({
    topic: dlqTopic,
    acks: -1,
    messages: records.map((r) => ({
      key: r.key,
      value: r.value,
      headers: {
        'error.reason': r.reason,
        'error.detail': r.detail,
        'source.topic': r.topic,
        'source.partition': String(r.partition),
        'source.offset': r.offset,
      },
    })),
  });
}
