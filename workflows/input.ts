/**
 * Input checks for jobs started from the Web UI with hand-written JSON: a bad input fails
 * the run at once (non-retryable) with a message that says what to fix.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { parseIsoTime } from '../src/temporal/iso-time';
import { shown } from '../src/temporal/shown-value';

/** The patched() marker of the check of an ISO time's years once in UTC (a9a28ae). */
export const ISO_TIME_UTC_YEARS = 'iso-time-utc-years';
/**
 * The patched() marker of the strict ISO-time check itself (1cb51bf): before it, a time was
 * anything Date.parse takes ("2026-11-21T00:00:00" without a zone, "2026-11-21 00:00:00Z"),
 * passed on as written. A job started so, replayed or continued on newer code, must not be
 * refused halfway (every workflow task failing with a determinism error).
 */
export const ISO_TIME_STRICT = 'iso-time-strict';

export function badInput(job: string, problem: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`${job}: invalid input: ${problem}`, 'InvalidJobInput');
}

export { shown };

export function asObject(job: string, input: unknown): Record<string, unknown> {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw badInput(job, `expected a JSON object such as {}, got ${shown(input)}`);
  return input as Record<string, unknown>;
}

/** `within` names a nested object (`source`), so the message says which fields are meant. */
export function rejectUnknownFields(job: string, input: Record<string, unknown>, allowed: string[], within?: string): void {
  const named = (field: string) => (within ? `${within}.${field}` : field);
  const unknown = Object.keys(input).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    const listed = unknown.slice(0, 10).map((k) => named(k.length > 64 ? `${k.slice(0, 64)}…` : k));
    const more = unknown.length > listed.length ? ` and ${unknown.length - listed.length} more` : '';
    throw badInput(job, `unknown field(s) ${listed.join(', ')}${more}; allowed: ${allowed.map(named).join(', ') || '(none)'}`);
  }
}

export function optionalInt(job: string, input: Record<string, unknown>, field: string, min: number, max: number, fallback: number): number {
  const value = input[field];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw badInput(job, `${field} must be a whole number from ${min} to ${max}, got ${shown(value)}`);
  }
  return value;
}

/**
 * An optional ISO-8601 time field, checked strictly (see parseIsoTime) and returned as a full
 * UTC ISO string. `checks.utcYears`: the caller's patched('iso-time-utc-years'). `checks.strict`
 * false (a job begun before the strict check, ISO_TIME_STRICT): a time strictly valid is
 * returned as always, and any other that Date.parse takes is passed on as written, as then.
 * Compare such times with Date.parse, not as strings.
 */
export function optionalIsoTime(job: string, input: Record<string, unknown>, field: string, checks: { utcYears: boolean; strict: boolean }): string | undefined {
  const value = input[field];
  if (value === undefined) return undefined;
  const parsed = parseIsoTime(value, checks);
  if ('iso' in parsed) return parsed.iso;
  if (!checks.strict && typeof value === 'string' && !Number.isNaN(Date.parse(value))) return value;
  throw badInput(job, `${field} ${parsed.problem}`);
}
