/**
 * The backlog every drain reads: realistic game traffic from the demo generator (seeded, so
 * the mix is the same run to run; event ids are random UUIDs), produced as fast as Kafka
 * takes it in big batches. Counts what it sent by kind, so drains can be checked.
 */
import { Partitioners, type Kafka } from 'kafkajs';
import { seededRandom, TrafficGenerator } from '../src/demo/traffic';

export interface PreloadOptions {
  topic: string;
  events: number;
  hunts: number;
  playersPerHunt: number;
  duplicateFraction: number;
  invalidFraction: number;
  seed: number;
}

export interface PreloadResult {
  sent: number;
  kinds: { event: number; duplicate: number; invalid: number };
  bytes: number;
  seconds: number;
}

const BATCH = 5000;
// Sends in flight at once: enough to keep the broker busy without queuing megabytes.
const IN_FLIGHT = 4;

export async function preloadBacklog(kafka: Kafka, options: PreloadOptions): Promise<PreloadResult> {
  const generator = new TrafficGenerator({
    hunts: options.hunts,
    playersPerHunt: options.playersPerHunt,
    duplicateFraction: options.duplicateFraction,
    invalidFraction: options.invalidFraction,
    random: seededRandom(options.seed),
  });
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const kinds = { event: 0, duplicate: 0, invalid: 0 };
  let bytes = 0;
  let sent = 0;
  const started = performance.now();
  const inFlight = new Set<Promise<unknown>>();
  try {
    while (sent < options.events) {
      const size = Math.min(BATCH, options.events - sent);
      const messages = Array.from({ length: size }, () => {
        const record = generator.next();
        kinds[record.kind]++;
        bytes += record.value.length;
        return { key: record.key, value: record.value };
      });
      sent += size;
      const send: Promise<unknown> = producer.send({ topic: options.topic, acks: 1, messages }).finally(() => inFlight.delete(send));
      inFlight.add(send);
      if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  } finally {
    await producer.disconnect();
  }
  return { sent, kinds, bytes, seconds: (performance.now() - started) / 1000 };
}
