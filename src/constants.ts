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
 * (CONTRACT.md §1), found by isolating it from the micro-batch it failed.
 */
export const REJECT_REASONS = [...VALIDATION_REASONS, 'unprocessable'] as const;

/** Hunts reconciled per transaction: what the data-quality repair uses, and a reconcile run unless its input says otherwise. */
export const HUNTS_PER_TRANSACTION = 20;
