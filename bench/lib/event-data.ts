/**
 * Event data for the batch-plane benchmarks, from the demo's seeded TrafficGenerator: an
 * NDJSON file for backfills (written as it is generated, never all in memory), and stored
 * events for recomputation, put in through the hot path's applyEvents in big transactions
 * (no Kafka, no classification: the stored rows are what matters there).
 */
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { parseOccurredAt, type HuntEvent } from '../../src/events/schema';
import { seededRandom, TrafficGenerator, type TrafficOptions } from '../../src/demo/traffic';
import { applyEvents, type AcceptedEvent } from '../../src/store/hot-path/apply-events';

export interface TrafficFileOptions {
  file: string;
  /** Valid, distinct events in the file; duplicates and invalid records come on top. */
  events: number;
  hunts: number;
  playersPerHunt: number;
  duplicateFraction: number;
  invalidFraction: number;
  seed: number;
}

export interface TrafficFile {
  file: string;
  records: number;
  kinds: { event: number; duplicate: number; invalid: number };
  bytes: number;
  seconds: number;
}

const WRITE_BLOCK = 10_000;

export function writeTrafficFile(options: TrafficFileOptions): TrafficFile {
  const started = performance.now();
  const generator = new TrafficGenerator({
    hunts: options.hunts,
    playersPerHunt: options.playersPerHunt,
    duplicateFraction: options.duplicateFraction,
    invalidFraction: options.invalidFraction,
    random: seededRandom(options.seed),
    // Ends over a minute before now: the generator's future_timestamp records (its clock + 1 h) stay invalid.
    now: strictlyIncreasingClock(Date.now() - 2 * options.events - 60_000),
  });
  fs.mkdirSync(path.dirname(options.file), { recursive: true });
  const fd = fs.openSync(options.file, 'w');
  const kinds = { event: 0, duplicate: 0, invalid: 0 };
  let bytes = 0;
  try {
    while (kinds.event < options.events) {
      const lines: Buffer[] = [];
      for (let i = 0; i < WRITE_BLOCK && kinds.event < options.events; i++) {
        const record = generator.next();
        kinds[record.kind]++;
        lines.push(record.value, NEWLINE);
      }
      const block = Buffer.concat(lines);
      bytes += block.length;
      fs.writeSync(fd, block);
    }
  } finally {
    fs.closeSync(fd);
  }
  return { file: options.file, records: kinds.event + kinds.duplicate + kinds.invalid, kinds, bytes, seconds: (performance.now() - started) / 1000 };
}

const NEWLINE = Buffer.from('\n');

/**
 * A clock for generated events: one millisecond per call, by default from a day ago, so event
 * time follows generation order (the hot path's arrival-order scoring then equals the final,
 * event-time answer: no drift but what a benchmark makes on purpose) and a million events
 * still lie in the past (a future occurredAt is rejected).
 */
export function strictlyIncreasingClock(start = Date.now() - 86_400_000): () => number {
  let last = start;
  return () => ++last;
}

/**
 * Valid events of one hunt (`huntId`), from a generator of its own: exact counts per hunt,
 * which the generator's uniform pick of hunts would not give.
 */
export function* huntEvents(huntId: string, count: number, options: Omit<TrafficOptions, 'hunts'> & { seed: number }): Generator<HuntEvent> {
  const generator = new TrafficGenerator({ ...options, hunts: 1, random: seededRandom(options.seed), now: options.now ?? strictlyIncreasingClock() });
  for (let i = 0; i < count; i++) {
    const event = generator.next().event;
    if (event) yield { ...event, huntId };
  }
}

export function acceptedOf(event: HuntEvent, source: string): AcceptedEvent {
  const instant = parseOccurredAt(event.occurredAt);
  if (!instant) throw new Error(`generated event ${event.eventId} has an unparsable occurredAt ${event.occurredAt}`);
  return { event, instant, source };
}

/** Stores and scores events through applyEvents, `chunkSize` per transaction; returns the events inserted. */
export async function storeEvents(pool: pg.Pool, events: Iterable<HuntEvent>, chunkSize: number, source: string): Promise<number> {
  let inserted = 0;
  let chunk: AcceptedEvent[] = [];
  const flush = async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      inserted += (await applyEvents(client, chunk)).inserted;
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
    chunk = [];
  };
  for (const event of events) {
    chunk.push(acceptedOf(event, source));
    if (chunk.length >= chunkSize) await flush();
  }
  if (chunk.length > 0) await flush();
  return inserted;
}
