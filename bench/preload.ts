/**
 * The backlog every drain reads: realistic game traffic from the demo generator (seeded, so
 * the mix is the same run to run; event ids are random UUIDs), produced as fast as Kafka
 * takes it in big batches. Counts what it sent by kind, so drains can be checked.
 */
import type { Kafka } from 'kafkajs';
import { seededRandom, TrafficGenerator } from '../src/demo/traffic';
import { produceBacklog } from './lib/produce-backlog';

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
  const kinds = { event: 0, duplicate: 0, invalid: 0 };
  let bytes = 0;
  const { sent, seconds } = await produceBacklog(kafka, { topic: options.topic, count: options.events, batch: BATCH, inFlight: IN_FLIGHT }, () => {
    const record = generator.next();
    kinds[record.kind]++;
    bytes += record.value.length;
    return { key: record.key, value: record.value };
  });
  return { sent, kinds, bytes, seconds };
}
