/**
 * The input and dead-letter topics: created when missing (idempotent), and checked so that
 * the DLQ can hold a copy of any record the input topic accepts. A DLQ that cannot would
 * refuse that copy (MESSAGE_TOO_LARGE): it would go without its bytes (dlq.ts), and copies
 * of records too large for it would keep the DLQ relay busy halving sends.
 */
import kafkajs, { type Admin, type Kafka } from 'kafkajs';
import type { Logger } from '../log';

export const DEFAULT_PARTITIONS = 4;
/** Room for the DLQ headers (error.detail is at most 1 KiB) and framing, over the input's largest record. */
export const DLQ_HEADROOM_BYTES = 4096;
const MAX_MESSAGE_BYTES = 'max.message.bytes';
const CLEANUP_POLICY = 'cleanup.policy';
// kafkajs is CommonJS; Node's ESM loader cannot see these two enums as named exports.
const { ConfigResourceTypes, ConfigSource } = kafkajs;

export class TopicConfigError extends Error {
  override readonly name = 'TopicConfigError';
}

export async function ensureTopics(kafka: Kafka, topics: string[], numPartitions = DEFAULT_PARTITIONS): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({ topics: missing.map((topic) => ({ topic, numPartitions })), waitForLeaders: true });
    }
  } finally {
    await admin.disconnect();
  }
}

export interface PreparedTopics {
  /** The largest record value the input topic accepts (its max.message.bytes). */
  inputMaxMessageBytes: number;
  /** The DLQ topic's max.message.bytes: the ceiling of one DLQ send. */
  dlqMaxMessageBytes: number;
  /** How the DLQ topic was at start-up, to make it again so if it is deleted (createDlqAgain). */
  dlqShape?: TopicShape;
}

/** A topic's partition count and its own settings (the overrides of the broker's defaults). */
export interface TopicShape {
  partitions: number;
  overrides: { name: string; value: string }[];
}

/**
 * Creates the input topic when missing, and the DLQ sized to hold a copy of the input's
 * largest record. An existing DLQ that is too small is raised when `mayAlterDlq` (the
 * embedded broker, which this project owns); otherwise start-up stops, naming the setting.
 */
export async function prepareTopics(
  kafka: Kafka,
  topics: { events: string; dlq: string },
  options: { mayAlterDlq: boolean; logger: Logger },
): Promise<PreparedTopics> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    if (!existing.has(topics.events)) await createTopic(admin, topics.events, []);
    const inputMaxMessageBytes = Number((await topicConfig(admin, topics.events)).get(MAX_MESSAGE_BYTES)?.configValue);
    const needed = inputMaxMessageBytes + DLQ_HEADROOM_BYTES;
    // The stream does not need the DLQ to start: rejects are quarantined in the commit, and
    // their copies wait for the relay (dlq-relay.ts), which creates the topic again when it
    // can and is watched while it cannot (hunt_dlq_copies_pending, HuntDlqCopiesWaiting).
    // So a DLQ that cannot be made or read (no ACL for it, a name Kafka refuses) is logged,
    // not a reason to stop every partition; one whose settings are wrong still stops start-up.
    const unusable = (err: unknown, doing: string): PreparedTopics => {
      options.logger.error(
        { err, topic: topics.dlq },
        `could not ${doing} the DLQ topic; starting anyway: rejects are quarantined and their DLQ copies wait until it can take them (see docs/operators.md, HuntDlqCopiesWaiting)`,
      );
      return { inputMaxMessageBytes, dlqMaxMessageBytes: needed };
    };
    if (!existing.has(topics.dlq)) {
      try {
        if (await createTopic(admin, topics.dlq, [{ name: MAX_MESSAGE_BYTES, value: String(needed) }])) {
          return { inputMaxMessageBytes, dlqMaxMessageBytes: needed, dlqShape: { partitions: DEFAULT_PARTITIONS, overrides: [] } };
        }
      } catch (err) {
        return unusable(err, 'create');
      }
    }
    let dlqConfig: Awaited<ReturnType<typeof topicConfig>>;
    try {
      dlqConfig = await topicConfig(admin, topics.dlq);
    } catch (err) {
      return unusable(err, 'read the settings of');
    }
    // A compacted topic refuses every record without a key (INVALID_RECORD, not retriable):
    // one reject without a key would hold its partition's lane for ever. And compaction keeps
    // only the last copy per key, dropping what the DLQ is for.
    const cleanupPolicy = dlqConfig.get(CLEANUP_POLICY)?.configValue ?? 'delete';
    if (cleanupPolicy.split(',').includes('compact')) {
      throw new TopicConfigError(
        `Kafka topic ${topics.dlq} has ${CLEANUP_POLICY}=${cleanupPolicy}; a DLQ must keep every copy, keyed or not. ` +
          `Set it to delete (kafka-configs.sh --alter --entity-type topics --entity-name ${topics.dlq} --add-config ${CLEANUP_POLICY}=delete), ` +
          `or point KAFKA_TOPIC_DLQ at another topic.`,
      );
    }
    const dlqMax = Number(dlqConfig.get(MAX_MESSAGE_BYTES)?.configValue);
    // The DLQ's own settings, max.message.bytes apart (set from what is needed, below).
    const overrides = [...dlqConfig.values()]
      .filter((e) => e.configSource === ConfigSource.TOPIC_CONFIG && e.configName !== MAX_MESSAGE_BYTES)
      .map((e) => ({ name: e.configName, value: e.configValue }));
    const partitions = await partitionCount(admin, topics.dlq).catch(() => DEFAULT_PARTITIONS);
    const dlqShape = { partitions, overrides };
    if (dlqMax >= needed) return { inputMaxMessageBytes, dlqMaxMessageBytes: dlqMax, dlqShape };
    const problem =
      `Kafka topic ${topics.dlq} has ${MAX_MESSAGE_BYTES}=${dlqMax}, too small for a copy of the largest record ` +
      `${topics.events} accepts (${MAX_MESSAGE_BYTES}=${inputMaxMessageBytes}) plus its error headers`;
    if (!options.mayAlterDlq) {
      throw new TopicConfigError(
        `${problem}. Raise the DLQ topic's ${MAX_MESSAGE_BYTES} to at least ${needed} ` +
          `(kafka-configs.sh --alter --entity-type topics --entity-name ${topics.dlq} --add-config ${MAX_MESSAGE_BYTES}=${needed}), ` +
          `or lower ${topics.events}'s.`,
      );
    }
    // The legacy AlterConfigs kafkajs speaks replaces every topic-level override, so keep the others.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topics.dlq, configEntries: [...overrides, { name: MAX_MESSAGE_BYTES, value: String(needed) }] }],
    });
    options.logger.warn({ topic: topics.dlq, from: dlqMax, to: needed }, `${problem}; raised it on the embedded broker`);
    return { inputMaxMessageBytes, dlqMaxMessageBytes: needed, dlqShape };
  } finally {
    await admin.disconnect();
  }
}

/**
 * Creates the DLQ topic again, with the limit it had at start-up, after it was deleted under
 * the running consumer: with its partition count and own settings too (retention, say) when
 * they were read at start-up, not the defaults. Without it, every copy waits in quarantine
 * until an operator makes the topic or restarts `hunt ingest` (the stream goes on:
 * dlq-relay.ts). A topic still being deleted, or made meanwhile by someone else, counts as there.
 */
export async function createDlqAgain(kafka: Kafka, topic: string, maxMessageBytes: number, shape?: TopicShape): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createTopic(admin, topic, [...(shape?.overrides ?? []), { name: MAX_MESSAGE_BYTES, value: String(maxMessageBytes) }], shape?.partitions);
  } catch (err) {
    if (!isTopicExists(err)) throw err;
  } finally {
    await admin.disconnect();
  }
}

/**
 * Creates a topic; false (kafkajs's answer) when it exists already: another member starting
 * at the same time made it between our listing and this call, with settings to be read.
 */
async function createTopic(admin: Admin, topic: string, configEntries: { name: string; value: string }[], numPartitions = DEFAULT_PARTITIONS): Promise<boolean> {
  return admin.createTopics({ topics: [{ topic, numPartitions, configEntries }], waitForLeaders: true });
}

async function partitionCount(admin: Admin, topic: string): Promise<number> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  return topics[0]?.partitions.length || DEFAULT_PARTITIONS;
}

function isTopicExists(err: unknown): boolean {
  const e = err as { type?: unknown; errors?: { type?: unknown }[] } | null;
  return e?.type === 'TOPIC_ALREADY_EXISTS' || (e?.errors ?? []).some((inner) => inner.type === 'TOPIC_ALREADY_EXISTS');
}

async function topicConfig(admin: Admin, topic: string) {
  const { resources } = await admin.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }], includeSynonyms: false });
  return new Map((resources[0]?.configEntries ?? []).map((e) => [e.configName, e]));
}
