/**
 * Checks of the `hunt` commands' arguments, as commander parsers: each is the same check the
 * job makes of its input (the rules are shared: src/constants.ts, src/temporal/iso-time.ts),
 * so a command refuses, before starting anything, what its job would refuse after.
 */
import { InvalidArgumentError } from 'commander';
import { BACKFILL_MAX_CHUNK_SIZE, ID_PATTERN, KAFKA_EPOCH } from '../constants';
import { parseIsoTime } from '../temporal/iso-time';

/** Digits only: Number() also took '1e3', '0x10' and ' 7 '. */
export const positiveInt = (raw: string) => {
  const value = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(value) || value <= 0) throw new InvalidArgumentError(`expected a positive whole number, got '${raw}'`);
  return value;
};

/** The same strict check as the job's own, so a time the command takes the job takes too. */
export const isoTime = (raw: string) => {
  const parsed = parseIsoTime(raw);
  if ('problem' in parsed) throw new InvalidArgumentError(`It ${parsed.problem}.`);
  return parsed.iso;
};

/** A backfill range's time: as the job checks it, from Kafka's first timestamp on. */
export const kafkaTime = (raw: string) => {
  const iso = isoTime(raw);
  if (iso < KAFKA_EPOCH) throw new InvalidArgumentError(`It must be at or after ${KAFKA_EPOCH} (Kafka's timestamps start there).`);
  return iso;
};

/** A backfill range's start: not later than now either, or there is nothing to import yet (the job refuses it). */
export const kafkaStart = (raw: string) => {
  const iso = kafkaTime(raw);
  if (iso > new Date().toISOString()) throw new InvalidArgumentError('It is later than now: there is nothing to import from it yet.');
  return iso;
};

/** A hunt id, as events and jobs take it. */
export const huntId = (raw: string) => {
  if (!ID_PATTERN.test(raw)) throw new InvalidArgumentError(`a hunt id is 1-64 characters of [A-Za-z0-9_.-], got '${raw}'`);
  return raw;
};

/** A variadic option's values, each checked by `check` as commander gives them one by one, at most `max` of them. */
export function listOf<T>(check: (raw: string) => T, max: number, what: string): (raw: string, previous: T[] | undefined) => T[] {
  return (raw, previous) => {
    if ((previous?.length ?? 0) >= max) throw new InvalidArgumentError(`at most ${max} ${what} (the job takes no more)`);
    return [...(previous ?? []), check(raw)];
  };
}

export const chunkSize = (raw: string) => {
  const value = positiveInt(raw);
  if (value > BACKFILL_MAX_CHUNK_SIZE) throw new InvalidArgumentError(`expected at most ${BACKFILL_MAX_CHUNK_SIZE}, got ${value}`);
  return value;
};
