/**
 * Constants shared by the services and the workflow code. No imports, on purpose: workflows
 * are bundled into Temporal's deterministic sandbox, so anything they import must be free of
 * I/O and Node built-ins, and a module without imports can never pull one in.
 */

/** Hunt and player ids: 1-64 characters of [A-Za-z0-9_.-]. */
export const ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** A Kafka topic name: 1-249 characters of [A-Za-z0-9._-]. */
export const TOPIC_NAME_PATTERN = /^[A-Za-z0-9._-]{1,249}$/;

/** Validation reasons in the order the checks run (the first failing one names the reason). */
export const VALIDATION_REASONS = [
  'too_large',
  'invalid_json',
  'unknown_type',
  'schema_violation',
  'future_timestamp',
] as const;

/**
 * Every reason a record can be rejected for: the validation reasons, then `unprocessable`, a
 * record that passed them all but that the database refused for a reason of its own
 * (CONTRACT.md §1), found by isolating it from the micro-batch it failed, then `unreadable`,
 * the records of a compressed batch whose bytes cannot be unpacked at all (one rejection for
 * the batch; a batch that unpacks past its budget is `too_large`; src/pipeline/compression.ts).
 */
export const REJECT_REASONS = [...VALIDATION_REASONS, 'unprocessable', 'unreadable'] as const;

/**
 * Hunts reconciled per transaction: what the data-quality repair uses, and a reconcile run
 * unless its input says otherwise (a group also ends before 2,000,000 events). Bigger groups
 * read the events table fewer times (1,000 hunts of 1,000 events: 184-187k events/s in groups
 * of 100, 150-154k in groups of 20), but a group merges under its hunts' fences the events
 * they took during its recompute: with traffic on every hunt, that grows with the square of
 * the group's size, and it holds those hunts' commits. Kept at 20 until that is measured
 * (experiments §67).
 */
export const HUNTS_PER_TRANSACTION = 20;

/**
 * Records per backfill chunk unless the job's input says otherwise. 10,000 rather than 5,000:
 * a chunk's player upserts fold more events each, worth about 4% of the rate
 * (bench/results/experiments-2026-12-02.md, section 9). A file chunk also stops at 16 MiB of
 * records (ndjson-source.ts), so memory stays bounded whatever the lines hold.
 */
export const BACKFILL_CHUNK_SIZE = 10_000;
/** The largest chunk a backfill takes (`chunkSize`). */
export const BACKFILL_MAX_CHUNK_SIZE = 50_000;

/** The most hunts a reconcile job's huntIds may list (it is copied into the memo, the activity's input and the progress query). */
export const MAX_RECONCILE_HUNT_IDS = 1000;

/** Kafka's timestamps count from here: a backfill range starting earlier is refused. */
export const KAFKA_EPOCH = '1970-01-01T00:00:00.000Z';
