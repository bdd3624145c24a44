/** Sends generated traffic to Kafka at a steady rate, in small batches every tick. */
import { Partitioners, type Kafka } from 'kafkajs';
import { groupsWithin } from '../byte-budget';
import type { TrafficGenerator, TrafficRecord } from './traffic';

export interface ProduceOptions {
  topic: string;
  /** Events per second, at most MAX_PRODUCE_RATE. */
  rate: number;
  /** Stop after this many records (default: no limit). */
  count?: number;
  /** Stop after this long (default: no limit). */
  durationMs?: number;
  signal?: AbortSignal;
  onProgress?: (sent: number) => void;
  /**
   * Hears a send that failed (Kafka unreachable past the client's retries); its records are
   * dropped, not caught up, and sending goes on a second later. Without it, a failed send
   * ends the run with its error.
   */
  onSendError?: (err: unknown) => void;
}

const TICK_MS = 10;
/**
 * The fastest rate taken. `--rate 1e8` built a second's 100 million records in one tick, which
 * took the whole heap, and under `hunt start` the ingest and the worker sharing the process
 * went down with it.
 */
export const MAX_PRODUCE_RATE = 1_000_000;
/**
 * The most records one tick builds: two ticks' worth at MAX_PRODUCE_RATE (about 4 MB of demo
 * records), so a slow tick is caught up over the next ones.
 */
const MAX_RECORDS_PER_TICK = (2 * MAX_PRODUCE_RATE * TICK_MS) / 1000;
/**
 * The most record bytes in one send. A send's records for one partition travel as one record
 * batch, which the broker refuses whole past the topic's max.message.bytes (1 MiB by
 * default); a tick that catches up on a slow second at a high rate held far more than that.
 */
const SEND_MAX_BYTES = 256 * 1024;
/** How long a producer that hears of failed sends waits before the next. */
const AFTER_FAILED_SEND_MS = 1000;

export async function produceTraffic(kafka: Kafka, generator: TrafficGenerator, options: ProduceOptions): Promise<number> {
  if (!(options.rate > 0 && options.rate <= MAX_PRODUCE_RATE)) throw new RangeError(`rate must be more than 0 and at most ${MAX_PRODUCE_RATE} events/s, got ${options.rate}`);
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const started = Date.now();
  let sent = 0;
  /** Records dropped after a failed send (onSendError): not due again. */
  let dropped = 0;
  try {
    for (;;) {
      const elapsed = Date.now() - started;
      if (options.signal?.aborted) break;
      if (options.durationMs !== undefined && elapsed >= options.durationMs) break;
      if (options.count !== undefined && sent >= options.count) break;
      // Send whatever the rate says is due by now, so slow ticks catch up; at most a second's
      // worth at a time, so a Kafka that stalled for a minute does not have the whole minute
      // generated in memory at once (at 10,000/s a 30 s stall took 700 MB), and at most
      // MAX_RECORDS_PER_TICK, which a second at a high rate is far past.
      let due = Math.min(Math.floor(((elapsed + TICK_MS) / 1000) * options.rate) - sent - dropped, Math.max(1, Math.ceil(options.rate)), MAX_RECORDS_PER_TICK);
      if (options.count !== undefined) due = Math.min(due, options.count - sent);
      let failed = false;
      if (due > 0) {
        const records = Array.from({ length: due }, () => generator.next());
        const groups = groupsWithin(records, SEND_MAX_BYTES, recordBytes);
        for (const group of groups) {
          // After a failure or a stop, the tick's other sends are not tried in turn.
          if (failed || options.signal?.aborted) break;
          try {
            await producer.send({ topic: options.topic, messages: group.map((r) => ({ key: r.key, value: r.value })) });
            sent += group.length;
          } catch (err) {
            if (!options.onSendError) throw err;
            options.onSendError(err);
            failed = true;
          }
        }
        // After a failure, everything due up to the end of the wait after it is dropped (the
        // tick's unsent records with it): not caught up afterwards at a hundred times the rate.
        if (failed) dropped = Math.max(dropped, Math.floor(((Date.now() - started + AFTER_FAILED_SEND_MS) / 1000) * options.rate) - sent);
        options.onProgress?.(sent);
      }
      const wait = failed ? AFTER_FAILED_SEND_MS : started + (Math.floor((Date.now() - started) / TICK_MS) + 1) * TICK_MS - Date.now();
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
    }
  } finally {
    await producer.disconnect();
  }
  return sent;
}

function recordBytes(record: TrafficRecord): number {
  return Buffer.byteLength(record.key) + record.value.length;
}
