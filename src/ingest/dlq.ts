/**
 * The dead-letter topic: every rejected record copied unchanged (same key, same value
 * bytes) with headers that say why, as CONTRACT.md specifies. The copies are sent by the
 * DLQ relay (dlq-relay.ts) from the quarantine rows the hot path committed, after the
 * micro-batch: the DLQ is at-least-once, the quarantine table exactly-once.
 *
 * A produce request carries one record batch per partition, and the broker refuses a batch
 * over the topic's `max.message.bytes` (MESSAGE_TOO_LARGE, which no retry cures). So the
 * copies go out in sends that each stay under that limit, whatever the number and size of
 * the rejects; `prepareTopics` has made sure the limit holds the largest record the input
 * topic accepts, plus headers.
 */
import { Partitioners, type Kafka, type Message, type Producer } from 'kafkajs';
import { groupsWithin } from '../byte-budget';
import type { Logger } from '../log';
import type { RejectedRecord } from '../store/hot-path/quarantine';

/** Per-record framing in a record batch (lengths, varints, attributes), rounded up. */
const RECORD_OVERHEAD_BYTES = 64;
/** The record batch header, rounded up, plus a margin for the estimate. */
const BATCH_OVERHEAD_BYTES = 1024;
/**
 * The most record bytes one send carries, whatever the topic's limit. A topic may allow
 * records of 100 MiB and more, but a request past the broker's socket.request.max.bytes
 * (100 MiB by default) is not refused, the connection is closed: a send of 105 copies of
 * 1 MiB to such a topic failed that way on every attempt. Only a copy alone may be larger.
 */
export const MAX_SEND_BYTES = 16 * 1024 * 1024;

/**
 * The producer the hot path sends DLQ copies with: one request in flight, so copies keep
 * their order, and not idempotent. When the broker refuses one partition's batch of a send
 * and takes the others, kafkajs 2.2.4 rolls back the sequence numbers of every partition in
 * the request, the taken ones too; an idempotent producer's next send to those partitions is
 * then refused as out of order, for as long as the process lives. Without sequence numbers a
 * resend can only repeat a copy, which the DLQ's at-least-once promise already allows.
 */
export function createDlqProducer(kafka: Kafka): Producer {
  // allowAutoTopicCreation: the DLQ topic is made at start-up with room for the largest copy; one the broker made with its defaults would refuse them.
  return kafka.producer({ idempotent: false, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
}

export interface DlqSender {
  /**
   * Sends the copies in order, in sends that fit the topic; `onSent` hears each send's records
   * once it is acknowledged. A copy the topic refuses for the record itself, which no retry
   * cures, goes to `onRefused` with the refusal, and the copies after it are sent; without
   * `onRefused` the refusal fails the send.
   */
  send<R extends RejectedRecord>(records: readonly R[], onSent?: (sent: R[]) => Promise<void>, onRefused?: (refused: R, reason: string) => Promise<void>): Promise<void>;
}

/**
 * What the broker refuses in a record itself: INVALID_RECORD, as a compacted topic answers a
 * record without a key. Sent again, it is refused again. (INVALID_TIMESTAMP and a format the
 * topic cannot store are the topic's or the clock's state, not a record's: every copy carries
 * the producer's time and the same headers, so those fail the pass like an outage.)
 */
const RECORD_REFUSALS = new Set(['INVALID_RECORD']);

interface Copy<R> {
  record: R;
  message: Message;
}

/**
 * `recreateTopic` makes the topic again when a send finds it gone (deleted while `hunt
 * ingest` runs); the send still fails, and the relay's next pass finds the topic there.
 */
export function createDlqSender(producer: Producer, topic: string, maxMessageBytes: number, logger: Logger, recreateTopic?: () => Promise<void>): DlqSender {
  const budget = maxMessageBytes - BATCH_OVERHEAD_BYTES;
  /** A copy the topic cannot hold (a compressed record unpacks far past the limit) goes without its bytes: quarantine keeps them. */
  const fitted = (message: Message): Message => {
    let fit = message;
    while (estimatedSize(fit) > budget) {
      const smaller = withoutBytes(fit);
      if (!smaller) break;
      fit = smaller;
    }
    if (fit !== message) logger.error({ topic, source: message.headers }, 'a copy is larger than the DLQ topic holds; sent without its bytes (quarantine keeps them)');
    return fit;
  };
  return {
    async send(records, onSent, onRefused) {
      type R = (typeof records)[number];
      /**
       * Sends `copies` in order. A send refused for what a record holds goes again one copy at
       * a time, so the records responsible are alone: retrying the same send would fail the
       * same way for ever, and hold every copy behind it. (The broker may have taken the batches
       * of the send's other partitions: those copies go twice, the DLQ is at-least-once.) The
       * topic's limit may have been lowered after start-up, below the budget the chunks were cut
       * to: a send refused as too large is halved, and a copy refused alone as too large goes
       * without its bytes. A copy refused alone for what it holds goes to `onRefused`.
       */
      const sendFitting = async (copies: Copy<R>[]): Promise<void> => {
        try {
          await producer.send({ topic, acks: -1, messages: copies.map((c) => c.message) });
        } catch (err) {
          const tooLarge = isTooLarge(err);
          if (!tooLarge && !isRecordRefusal(err)) throw err;
          if (copies.length > 1 && tooLarge) {
            const half = Math.ceil(copies.length / 2);
            logger.warn({ topic, records: copies.length }, 'DLQ topic refused a send as too large (its max.message.bytes is lower than at start-up?); sending it in halves');
            await sendFitting(copies.slice(0, half));
            await sendFitting(copies.slice(half));
            return;
          }
          if (copies.length > 1) {
            logger.warn({ topic, records: copies.length, code: failureCode(err) }, 'DLQ topic refused a send for what a record holds; sending its copies one at a time');
            for (const copy of copies) await sendFitting([copy]);
            return;
          }
          const copy = copies[0] as Copy<R>;
          if (tooLarge) {
            const smaller = withoutBytes(copy.message);
            // Nothing of the record left to drop: the topic's limit is below any copy, which is
            // the topic's state, not this record's; the copies wait for it to be put right.
            if (!smaller) throw err;
            logger.error({ topic, source: copy.message.headers }, 'DLQ topic refused a copy as too large; sending it without its bytes (quarantine keeps them)');
            await sendFitting([{ record: copy.record, message: smaller }]);
            return;
          }
          if (!onRefused) throw err;
          await onRefused(copy.record, `${failureCode(err) ?? 'refused'}: ${(err as Error).message}`);
          return;
        }
        await onSent?.(copies.map((c) => c.record));
      };
      const copies = records.map((record) => ({ record, message: fitted(dlqMessage(record)) }));
      try {
        for (const group of chunksWithin(copies, Math.min(budget, MAX_SEND_BYTES), (c) => c.message)) await sendFitting(group);
      } catch (err) {
        if (recreateTopic && kafkaErrorTypes(err).includes('UNKNOWN_TOPIC_OR_PARTITION')) {
          logger.warn({ topic }, 'the DLQ topic is gone (deleted?); creating it again as at start-up');
          await recreateTopic().catch((createErr: unknown) => logger.warn({ err: createErr, topic }, 'could not create the DLQ topic again; the copies wait for it'));
        }
        throw err;
      }
    },
  };
}

/** The copy without its value, or, when it has none, without its key; undefined when neither is left to drop. */
function withoutBytes(message: Message): Message | undefined {
  if (message.value !== null && message.value !== undefined) {
    return { ...message, value: null, headers: { ...message.headers, 'error.dlq': 'value omitted: larger than the DLQ topic max.message.bytes; see quarantine' } };
  }
  if (message.key !== null && message.key !== undefined) {
    return { ...message, key: null, headers: { ...message.headers, 'error.dlq': 'key and value omitted: larger than the DLQ topic max.message.bytes; see quarantine' } };
  }
  return undefined;
}

export function dlqMessage(r: RejectedRecord): Message {
  return {
    key: r.key,
    value: r.value,
    headers: {
      'error.reason': r.reason,
      'error.detail': r.detail,
      'source.topic': r.topic,
      'source.partition': String(r.partition),
      'source.offset': r.offset,
    },
  };
}

/**
 * Groups items (messages, or what carries them: `messageOf`), in order, so each group's
 * estimated batch size stays within `budget` (a message alone may exceed it).
 */
export function chunksWithin<T>(items: readonly T[], budget: number, messageOf: (item: T) => Message = (item) => item as Message): T[][] {
  return groupsWithin(items, budget, (item) => estimatedSize(messageOf(item)));
}

export function estimatedSize(message: Message): number {
  let bytes = RECORD_OVERHEAD_BYTES + byteLength(message.key) + byteLength(message.value);
  for (const [name, value] of Object.entries(message.headers ?? {})) bytes += Buffer.byteLength(name) + 8 + byteLength(value as Buffer | string);
  return bytes;
}

function byteLength(value: Buffer | string | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'string' ? Buffer.byteLength(value) : value.length;
}

function isTooLarge(err: unknown): boolean {
  return kafkaErrorTypes(err).some((type) => type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE');
}

function isRecordRefusal(err: unknown): boolean {
  return kafkaErrorTypes(err).some((type) => RECORD_REFUSALS.has(type));
}

/** The Kafka error types along `err` and what it wraps (kafkajs keeps a retried error as originalError). */
export function kafkaErrorTypes(err: unknown): string[] {
  const types: string[] = [];
  for (let e = err as { type?: unknown; cause?: unknown; originalError?: unknown } | undefined; e; e = (e.cause ?? e.originalError) as typeof e) {
    if (typeof e.type === 'string') types.push(e.type);
  }
  return types;
}

/** What names a failure for whoever reads the retries: Postgres's SQLSTATE, the system's (ECONNREFUSED) or Kafka's error type. */
export function failureCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : kafkaErrorTypes(err)[0];
}
