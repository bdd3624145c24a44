/**
 * The producer helper for TypeScript game clients: builds events and sends them to the
 * input topic the way the contract wants (key = huntId as UTF-8, value = the event JSON).
 *
 * Every event is checked with the consumer's own classifier before anything is sent, so a
 * client learns about a bad event from a thrown error instead of from the dead-letter
 * topic. The future-timestamp check uses this process's clock, which is only a proxy for
 * the consumer's.
 */
import { randomUUID } from 'node:crypto';
import type { Producer, RecordMetadata } from 'kafkajs';
import type { EventOfType, EventType, HuntEvent, PayloadOf } from './schema';
import { classifyRecord, type ValidationReason } from './validate';

/** A bad event handed to `send`; nothing of that batch was sent. */
export class EventValidationError extends Error {
  override readonly name = 'EventValidationError';
  constructor(
    readonly eventId: string | undefined,
    readonly reason: ValidationReason,
    readonly detail: string,
  ) {
    super(`event ${eventId ?? '(without eventId)'} would be rejected as ${reason}: ${detail}`);
  }
}

export interface EventProducerOptions {
  /** A connected kafkajs producer; its lifecycle (connect, disconnect) stays the caller's. */
  producer: Producer;
  /** The input topic, `hunt.events` unless configured otherwise. */
  topic: string;
  /** The clock for the future-timestamp check; tests pass a fixed one. */
  now?: () => Date;
}

export interface EventProducer {
  /** Validates all events, then sends them in one request; throws EventValidationError first if any is bad. */
  send(events: readonly HuntEvent[]): Promise<RecordMetadata[]>;
}

export function createEventProducer({ producer, topic, now = () => new Date() }: EventProducerOptions): EventProducer {
  return {
    async send(events) {
      const checkedAt = now();
      const messages = events.map((event) => {
        const value = Buffer.from(JSON.stringify(event), 'utf8');
        const verdict = classifyRecord(value, checkedAt);
        if (!verdict.ok) throw new EventValidationError(eventIdOf(event), verdict.reason, verdict.detail);
        return { key: Buffer.from(event.huntId, 'utf8'), value };
      });
      if (messages.length === 0) return [];
      return producer.send({ topic, messages });
    },
  };
}

// Callers without type checking can pass anything; name the event only if it has a usable id.
function eventIdOf(event: unknown): string | undefined {
  const eventId: unknown = (event as { eventId?: unknown } | null)?.eventId;
  return typeof eventId === 'string' ? eventId : undefined;
}

export interface NewEventFields<T extends EventType> {
  huntId: string;
  playerId: string;
  payload: PayloadOf<T>;
  /** Defaults to now. A Date is written as UTC with milliseconds. */
  occurredAt?: Date | string;
  /** Defaults to a random UUID; pass your own to make retries of one logical event idempotent. */
  eventId?: string;
}

/**
 * Builds an event of the given type. Reuse the returned event (same eventId) when retrying
 * a send: the eventId is what makes a redelivery harmless.
 */
export function newEvent<T extends EventType>(type: T, fields: NewEventFields<T>): EventOfType<T> {
  const occurredAt = fields.occurredAt ?? new Date();
  return {
    eventId: fields.eventId ?? randomUUID(),
    type,
    schemaVersion: 1,
    huntId: fields.huntId,
    playerId: fields.playerId,
    occurredAt: typeof occurredAt === 'string' ? occurredAt : occurredAt.toISOString(),
    payload: fields.payload,
  } as EventOfType<T>;
}
