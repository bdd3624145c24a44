/**
 * Classifies one Kafka record value as an accepted event or a rejection with a reason,
 * applying the CONTRACT's checks in its order; the first failing check names the reason.
 * Runs per record on the hot path, so each step does only what its check needs and never
 * throws: a record that breaks the classifier would stall its partition.
 */
import { isUtf8 } from 'node:buffer';
import type { z } from 'zod';
import {
  EVENT_SCHEMAS,
  EVENT_TYPES,
  isEventType,
  parseOccurredAt,
  previewValue,
  type EventInstant,
  type HuntEvent,
} from './schema';
import { REJECT_REASONS, VALIDATION_REASONS } from '../constants';
import { toDetailText } from './detail-text';
import { fastAccept } from './fast-accept';

/** Largest accepted record value: 64 KiB; anything over is `too_large`. */
export const MAX_EVENT_BYTES = 64 * 1024;
/** How far past the consumer's clock `occurredAt` may be; exactly this much is still accepted. */
export const FUTURE_TOLERANCE_MS = 5 * 60 * 1000;

/** The reasons themselves are in src/constants.ts, shared with the workflows' input checks. */
export type ValidationReason = (typeof VALIDATION_REASONS)[number];
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface AcceptedRecord {
  ok: true;
  event: HuntEvent;
  /** `event.occurredAt` as an instant, for ordering and windowing without re-parsing. */
  instant: EventInstant;
}
export interface Rejection {
  ok: false;
  reason: ValidationReason;
  /** Human text for the DLQ `error.detail` header: names the field and what was wrong; safe text of at most 1 KiB. */
  detail: string;
}
export type RecordClassification = AcceptedRecord | Rejection;

// Issues listed in a detail; the DLQ header should stay short and the first few tell the story.
const MAX_ISSUES_IN_DETAIL = 5;

const reject = (reason: ValidationReason, detail: string): Rejection => ({ ok: false, reason, detail: toDetailText(detail) });

/**
 * Classifies a raw record value. A null value (a Kafka tombstone) is `invalid_json`: it is
 * not a JSON object, and no producer of this topic has a reason to send one.
 */
export function classifyRecord(value: Buffer | null, now: Date): RecordClassification {
  if (value === null) return reject('invalid_json', 'null record value (Kafka tombstone); expected a JSON object');
  if (value.length > MAX_EVENT_BYTES) {
    return reject('too_large', `value is ${value.length} bytes; the limit is ${MAX_EVENT_BYTES}`);
  }
  // toString would silently replace bad sequences with U+FFFD, changing ids; refuse instead.
  if (!isUtf8(value)) return reject('invalid_json', 'value is not valid UTF-8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch (error) {
    return reject('invalid_json', `value is not JSON: ${(error as Error).message}`);
  }
  return classifyDecoded(parsed, now);
}

/**
 * The checks after decoding (invalid_json for non-objects, then unknown_type,
 * schema_violation, future_timestamp), for sources that are already JSON-parsed, such as
 * an NDJSON backfill line or a quarantined event being replayed.
 */
export function classifyDecoded(value: unknown, now: Date): RecordClassification {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return reject('invalid_json', `expected a JSON object, got ${previewValue(value)}`);
  }
  const fast = fastAccept(value);
  if (fast) return checkNotFuture(fast.event, fast.instant, now);
  const type: unknown = (value as { type?: unknown }).type;
  if (!isEventType(type)) {
    const got = type === undefined ? 'missing' : `${previewValue(type)} is not a known type`;
    return reject('unknown_type', `type: ${got}; expected one of ${EVENT_TYPES.join(', ')}`);
  }
  const result = EVENT_SCHEMAS[type].safeParse(value);
  if (!result.success) return reject('schema_violation', describeIssues(result.error.issues));
  const event = result.data as HuntEvent;
  // The schema already proved the timestamp parses; this second parse is the cheap half.
  return checkNotFuture(event, parseOccurredAt(event.occurredAt) as EventInstant, now);
}

function checkNotFuture(event: HuntEvent, instant: EventInstant, now: Date): RecordClassification {
  const limitMs = now.getTime() + FUTURE_TOLERANCE_MS;
  if (instant.epochMs > limitMs || (instant.epochMs === limitMs && instant.micros > 0)) {
    return reject(
      'future_timestamp',
      `occurredAt: ${event.occurredAt} is more than ${FUTURE_TOLERANCE_MS / 1000}s after the consumer clock ${now.toISOString()}`,
    );
  }
  return { ok: true, event, instant };
}

/** Renders zod issues as `path: problem; path: problem`, e.g. `payload.points: expected integer 0-1000, got 1001`. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const parts: string[] = [];
  for (const issue of issues.slice(0, MAX_ISSUES_IN_DETAIL)) {
    const path = issue.path.length === 0 ? '(event)' : formatPath(issue.path);
    const problem =
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => previewValue(k)).join(', ')}`
        : issue.message;
    parts.push(`${path}: ${problem}`);
  }
  if (issues.length > MAX_ISSUES_IN_DETAIL) parts.push(`and ${issues.length - MAX_ISSUES_IN_DETAIL} more`);
  return parts.join('; ');
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`)).join('');
}

