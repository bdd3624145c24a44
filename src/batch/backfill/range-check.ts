/**
 * Whether a Kafka backfill's offset range can still be read. The range is fixed when the job
 * starts (each partition's end is its log end then), so a log end that is now below a
 * partition's range end, a partition that is gone, or a topic that is gone can only mean the
 * records the job set out to import are gone: the topic was deleted (and perhaps created
 * again, by hand or by a producer with auto-creation), or its log truncated. Waiting can never
 * bring those records back, so the job must fail and say so.
 */
import type { Admin } from 'kafkajs';

/** Next offset to read per partition, as decimal strings (JSON-safe for heartbeats). */
export type PartitionOffsets = Record<string, string>;

export interface KafkaRange {
  start: PartitionOffsets;
  /** Exclusive end per partition. */
  end: PartitionOffsets;
}

/** The partitions whose cursor has not reached the range's end. */
export function openPartitions(cursor: PartitionOffsets, range: KafkaRange): string[] {
  return Object.keys(range.end).filter((p) => BigInt(cursor[p] ?? range.end[p] ?? '0') < BigInt(range.end[p] ?? '0'));
}

/** Records left between `cursor` and `end`; a partition the cursor does not name counts as done. */
export function remaining(cursor: PartitionOffsets, end: PartitionOffsets): number {
  return Object.entries(end).reduce((sum, [p, e]) => sum + Math.max(0, Number(e) - Number(cursor[p] ?? e)), 0);
}

/** The range's records are gone for good; the message names the topic and what to do. */
export class KafkaRangeGoneError extends Error {
  override readonly name = 'KafkaRangeGoneError';
}

/** What the cluster says of the topic now: undefined when it does not list the topic. */
export interface TopicState {
  /** Log end (last stable offset) per partition the topic has now. */
  high: PartitionOffsets;
}

const AFTERWARDS =
  'What the job imported stays (events already stored are skipped on a later run): start a new backfill of the topic as it is now, or restore its records first';

/** Why the rest of the range can never be read, or undefined while it can. Pure. */
export function rangeGoneReason(topic: string, state: TopicState | undefined, cursor: PartitionOffsets, range: KafkaRange): string | undefined {
  const open = openPartitions(cursor, range);
  if (open.length === 0) return undefined;
  if (state === undefined) {
    return `Kafka topic ${topic} was deleted while the backfill read it (${remaining({ ...range.start, ...cursor }, range.end)} records of its range unread). ${AFTERWARDS}`;
  }
  for (const p of open) {
    const high = state.high[p];
    if (high === undefined) {
      return `Kafka topic ${topic} has no partition ${p} any more (the topic was deleted and created again with fewer partitions), so the offsets the backfill fixed at its start name no records. ${AFTERWARDS}`;
    }
    if (BigInt(high) < BigInt(range.end[p] ?? '0')) {
      return (
        `Kafka topic ${topic} partition ${p} now ends at offset ${high}, before the end of the backfill's range (${range.end[p]}, read up to ${cursor[p] ?? range.start[p]}): ` +
        `the topic was deleted and created again (or its log truncated), so those offsets no longer name the records the job set out to import. ${AFTERWARDS}`
      );
    }
  }
  return undefined;
}


/**
 * The topic's partitions and log ends, or undefined if the cluster does not list it. The list
 * of all topics comes first: asking for a deleted topic's offsets makes kafkajs retry an
 * unknown-topic answer for seconds. Errors reaching the cluster are thrown: an outage is not
 * an answer.
 */
export async function fetchTopicState(admin: Admin, topic: string): Promise<(TopicState & { low: PartitionOffsets }) | undefined> {
  if (!(await admin.listTopics()).includes(topic)) return undefined;
  const marks = await admin.fetchTopicOffsets(topic);
  return {
    high: Object.fromEntries(marks.map((m) => [String(m.partition), m.high])),
    low: Object.fromEntries(marks.map((m) => [String(m.partition), m.low])),
  };
}

/** How long a gone range must be seen, with no answer in between saying otherwise, before it counts. */
export const GONE_CONFIRM_MS = 5000;

/**
 * Confirms a gone range over time: a new leader's log end can lag its predecessor's for a
 * moment, and metadata can lag a topic's creation, so one answer is not enough.
 */
export class GoneRangeWatch {
  private goneSince: number | undefined;

  constructor(private readonly confirmMs = GONE_CONFIRM_MS) {}

  /** Feeds one answer (undefined: readable); returns the reason once it has held for long enough. */
  observe(reason: string | undefined, nowMs = performance.now()): string | undefined {
    if (reason === undefined) {
      this.goneSince = undefined;
      return undefined;
    }
    this.goneSince ??= nowMs;
    return nowMs - this.goneSince >= this.confirmMs ? reason : undefined;
  }

  get suspect(): boolean {
    return this.goneSince !== undefined;
  }
}
