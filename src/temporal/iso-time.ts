/**
 * Strict ISO-8601 times for job inputs, shared by the workflows' input checks
 * (workflows/input.ts) and the `hunt` command, so a time the CLI accepts is one the job
 * accepts. Pure: no Node built-ins, no I/O (workflow code imports it).
 */
import { shown } from './shown-value';

/** The first and last instants Postgres's timestamptz keeps in years 0001-9999 (UTC). */
const FIRST_TIME_MS = Date.parse('0001-01-01T00:00:00Z');
const LAST_TIME_MS = Date.parse('9999-12-31T23:59:59.999Z');

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/**
 * The time as a full UTC ISO string, or why it is not one. Date.parse is no check: it takes
 * "2026-02-30" (as March 2nd) and even "1"; Postgres then refuses the value, and a job that
 * retries a refusal never ends. A date alone is UTC midnight; a time needs its zone.
 * `utcYears: false` leaves out the check of the years once in UTC, which came later: only
 * for a job that started before it, replaying its history (workflows call patched()).
 */
export function parseIsoTime(value: unknown, { utcYears = true } = {}): { iso: string } | { problem: string } {
  const problem = `must be an ISO-8601 time such as 2026-11-22T00:00:00Z (or a date such as 2026-11-22), got ${shown(value)}`;
  const match = typeof value === 'string' ? ISO_TIME.exec(value) : null;
  if (!match) return { problem };
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(match[i] ?? 0)) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !isLeapYear(year) ? 1 : 0);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) {
    return { problem: `${problem}: no such date or time` };
  }
  const ms = Date.parse(match[4] === undefined ? `${String(value)}T00:00:00Z` : String(value));
  if (Number.isNaN(ms)) return { problem };
  // A zone's offset can carry a time out of the years Postgres keeps (9999-12-31T23:59-05:00
  // is in 10000 UTC, 0001-01-01T00:00+01:00 in year 0): refused there on every retry.
  if (utcYears && (ms < FIRST_TIME_MS || ms > LAST_TIME_MS)) return { problem: `${problem}: outside the years 0001-9999 once in UTC` };
  return { iso: new Date(ms).toISOString() };
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}
