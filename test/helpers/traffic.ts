/**
 * Seeded test traffic whose expected result is known: in event-time order per hunt (so the
 * hot path's arrival-order scoring must equal the reference fold exactly), with duplicates
 * and invalid records mixed in.
 */
import { Partitioners } from 'kafkajs';
import type { HuntEvent } from '../../src/events/schema';
import { seededRandom, TrafficGenerator, type TrafficRecord } from '../../src/demo/traffic';
import { testKafka } from './ingest';

export function inOrderTraffic(count: number, seed: number): { records: TrafficRecord[]; events: HuntEvent[]; invalid: number } {
  // One millisecond apart, ending about now: strictly increasing event time, never in the future.
  let tick = Date.now() - count - 60_000;
  const generator = new TrafficGenerator({
    hunts: 5,
    playersPerHunt: 30,
    cluesPerHunt: 15,
    treasuresPerHunt: 6,
    duplicateFraction: 0.05,
    invalidFraction: 0.01,
    random: seededRandom(seed),
    now: () => tick++,
  });
  const records = Array.from({ length: count }, () => generator.next());
  return {
    records,
    events: records.flatMap((r) => (r.event ? [r.event] : [])),
    invalid: records.filter((r) => r.kind === 'invalid').length,
  };
}

/** Sends records at about `rate` per second, in 20 ms slices. */
/** Records per produce request of sendAtRate: well under a megabyte in one partition's batch. */
const SEND_RECORDS = 500;

export async function sendAtRate(topic: string, records: TrafficRecord[], rate: number): Promise<void> {
  const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const started = Date.now();
  try {
    let sent = 0;
    while (sent < records.length) {
      const due = Math.min(records.length, Math.ceil(((Date.now() - started + 20) / 1000) * rate));
      // At most SEND_RECORDS a request: after the event loop stalled (a test opening
      // thousands of sockets), what fell due at once made one batch past the broker's
      // message.max.bytes, and the send failed (MESSAGE_TOO_LARGE).
      while (due > sent) {
        const upTo = Math.min(due, sent + SEND_RECORDS);
        await producer.send({ topic, messages: records.slice(sent, upTo).map((r) => ({ key: r.key, value: r.value })) });
        sent = upTo;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await producer.disconnect();
  }
}
