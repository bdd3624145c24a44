/**
 * The ingest benchmark's backlog, re-encoded for Kafka Connect: the same seeded
 * TrafficGenerator, the same keys (huntId) and partitioner, every event wrapped in the
 * envelope JsonConverter reads with `schemas.enable=true`, `{"schema": ..., "payload": ...}`.
 * The sink needs a schema to build its table and statements, and plain JSON carries none.
 *
 * Field contents are ours unchanged; `payload` travels as a JSON string (the sink has no
 * type for a free-form object), `occurredAt` as the ISO string we send.
 */
import type { Kafka } from 'kafkajs';
import type { HuntEvent } from '../../src/events/schema';
import { seededRandom, TrafficGenerator } from '../../src/demo/traffic';
import { produceBacklog } from '../lib/produce-backlog';

export interface ConnectEventsOptions {
  topic: string;
  /** Records to put in the topic (events plus duplicates; skipped invalid ones do not count). */
  events: number;
  hunts: number;
  playersPerHunt: number;
  duplicateFraction: number;
  invalidFraction: number;
  seed: number;
}

export interface ConnectEventsResult {
  sent: number;
  /**
   * What the generator drew. `invalid` records are skipped: Connect has no validation step,
   * and the malformed ones would stop the sink task (our ingest sends them to the DLQ).
   */
  kinds: { event: number; duplicate: number; invalidSkipped: number };
  /** Rows an upsert by eventId ends with: duplicates resend an eventId already in the topic. */
  distinctEventIds: number;
  bytes: number;
  /** Bytes of the embedded schema in each record, for the report. */
  schemaBytes: number;
  seconds: number;
}

const field = (name: string, type: 'string' | 'int32') => ({ field: name, type, optional: false });

/** The Connect schema of one event, serialized once and spliced into every record. */
const SCHEMA_JSON = JSON.stringify({
  type: 'struct',
  name: 'dev.treasurehunt.HuntEvent',
  optional: false,
  fields: [
    field('eventId', 'string'),
    field('type', 'string'),
    field('schemaVersion', 'int32'),
    field('huntId', 'string'),
    field('playerId', 'string'),
    field('occurredAt', 'string'),
    field('payload', 'string'),
  ],
});

/** One event in JsonConverter's schema-and-payload envelope. */
function connectEnvelope(event: HuntEvent): string {
  const payload = {
    eventId: event.eventId,
    type: event.type,
    schemaVersion: event.schemaVersion,
    huntId: event.huntId,
    playerId: event.playerId,
    occurredAt: event.occurredAt,
    payload: JSON.stringify(event.payload),
  };
  return `{"schema":${SCHEMA_JSON},"payload":${JSON.stringify(payload)}}`;
}

// Records per send. The envelope makes a record ~700 bytes (ours ~230), and the partitions
// of one send are uneven (100 hunts over 4 partitions): at 1000 a partition's record batch
// stays under the broker's 1 MB message.max.bytes even if it got them all.
const BATCH = 1000;
// Enough sends in flight to keep the broker busy without queuing megabytes.
const IN_FLIGHT = 8;

/** Produces the backlog to `topic` (which must exist, with the ingest bench's 4 partitions). */
export async function produceConnectEvents(kafka: Kafka, options: ConnectEventsOptions): Promise<ConnectEventsResult> {
  const generator = new TrafficGenerator({
    hunts: options.hunts,
    playersPerHunt: options.playersPerHunt,
    duplicateFraction: options.duplicateFraction,
    invalidFraction: options.invalidFraction,
    random: seededRandom(options.seed),
  });
  const kinds = { event: 0, duplicate: 0, invalidSkipped: 0 };
  let bytes = 0;
  const nextMessage = () => {
    for (;;) {
      const record = generator.next();
      if (record.kind === 'invalid') {
        kinds.invalidSkipped++;
        continue;
      }
      kinds[record.kind]++;
      // A duplicate carries no `event`; its bytes are the (possibly re-timed) copy of one.
      const event = record.event ?? (JSON.parse(record.value.toString('utf8')) as HuntEvent);
      const value = connectEnvelope(event);
      bytes += Buffer.byteLength(value);
      return { key: record.key, value };
    }
  };
  const { sent, seconds } = await produceBacklog(kafka, { topic: options.topic, count: options.events, batch: BATCH, inFlight: IN_FLIGHT }, nextMessage);
  return {
    sent,
    kinds,
    distinctEventIds: kinds.event,
    bytes,
    schemaBytes: Buffer.byteLength(SCHEMA_JSON) + '{"schema":,"payload":}'.length,
    seconds,
  };
}
