/**
 * Input checks for jobs started from the Web UI with hand-written JSON: a bad input fails
 * the run at once (non-retryable) with a message that says what to fix.
 */
import { ApplicationFailure } from '@temporalio/workflow';

export function badInput(job: string, problem: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`${job}: invalid input: ${problem}`, 'InvalidJobInput');
}

export function asObject(job: string, input: unknown): Record<string, unknown> {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw badInput(job, `expected a JSON object such as {}, got ${JSON.stringify(input)}`);
  return input as Record<string, unknown>;
}

export function rejectUnknownFields(job: string, input: Record<string, unknown>, allowed: string[]): void {
  const unknown = Object.keys(input).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw badInput(job, `unknown field(s) ${unknown.join(', ')}; allowed: ${allowed.join(', ') || '(none)'}`);
}

export function optionalInt(job: string, input: Record<string, unknown>, field: string, min: number, max: number, fallback: number): number {
  const value = input[field];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw badInput(job, `${field} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/**
 * An optional ISO-8601 time field, checked strictly and returned as a full UTC ISO string.
 * Date.parse is no check: it takes "2026-02-30" (as March 2nd) and even "1"; Postgres then
 * refuses the value, and a job that retries a refusal never ends. A date alone is UTC
 * midnight; a time needs its zone.
 */
export function optionalIsoTime(job: string, input: Record<string, unknown>, field: string): string | undefined {
  const value = input[field];
  if (value === undefined) return undefined;
  const problem = `${field} must be an ISO-8601 time such as 2026-11-22T00:00:00Z (or a date such as 2026-11-22), got ${JSON.stringify(value)}`;
  const match = typeof value === 'string' ? ISO_TIME.exec(value) : null;
  if (!match) throw badInput(job, problem);
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(match[i] ?? 0)) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !isLeapYear(year) ? 1 : 0);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) {
    throw badInput(job, `${problem}: no such date or time`);
  }
  const ms = Date.parse(match[4] === undefined ? `${String(value)}T00:00:00Z` : String(value));
  if (Number.isNaN(ms)) throw badInput(job, problem);
  return new Date(ms).toISOString();
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}
