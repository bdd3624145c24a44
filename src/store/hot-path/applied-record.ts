/**
 * Whether a record fetched again is the one the hot path applied at its offset: after a join,
 * the record before the stored position is read again and compared (positions.ts), since a
 * topic deleted and created again (or a log truncated and written again) can have grown past
 * the position, and would otherwise be read on from there.
 *
 * A record applied there left a trace: a reject, a quarantine row at that offset with the
 * first MAX_KEPT_BYTES of its key and of its value; an event, its eventId in `events`. An
 * offset can have quarantine rows of earlier logs too, so a row that differs proves nothing:
 * the record is the applied one
 * if any row at the offset has its bytes, or its eventId is stored. A different record at
 * the offset has neither, unless it repeats a record of an earlier log (an event stored
 * before, as a producer's retry on the new log would send), which cannot be told apart and
 * is taken as the same.
 */
import type pg from 'pg';
import { EVENT_ID_MAX_CODE_POINTS, isStorableText } from '../../events/schema';
import { MAX_EVENT_BYTES } from '../../events/validate';
import { kept } from '../../pipeline/classify';

export async function isAppliedRecord(
  pool: pg.Pool,
  topic: string,
  partition: number,
  record: { offset: string; key: Buffer | null; value: Buffer | null },
): Promise<boolean> {
  // Compared by the digest of the bytes kept (record_digest, migration 015), so no row's
  // bytes are fetched: the key's too, since a reject of a new log can repeat an old one's
  // value at the same offset (a tombstone, a `{}`) under another key.
  const quarantined = await pool.query(
    `SELECT 1 FROM quarantine
      WHERE source_topic = $1 AND source_partition = $2 AND source_offset = $3
        AND record_digest = sha256(CASE WHEN $4::bytea IS NULL THEN '\\x00'::bytea ELSE '\\x01'::bytea || $4::bytea END)
                         || sha256(CASE WHEN $5::bytea IS NULL THEN '\\x00'::bytea ELSE '\\x01'::bytea || $5::bytea END)`,
    [topic, partition, record.offset, kept(record.value), kept(record.key)],
  );
  if ((quarantined.rowCount ?? 0) > 0) return true;
  const eventId = eventIdOf(record.value);
  if (eventId === undefined) return false;
  const stored = await pool.query('SELECT 1 FROM events WHERE event_id = $1', [eventId]);
  return (stored.rowCount ?? 0) > 0;
}

/**
 * The record's eventId when it is one the hot path could have stored (the schema's rule: 1-64
 * code points Postgres can hold): any other (a NUL byte, which Postgres refuses in text on
 * every try) was never applied, and asking Postgres for it would fail the check for ever.
 */
function eventIdOf(value: Buffer | null): string | undefined {
  if (value === null || value.length > MAX_EVENT_BYTES) return undefined;
  try {
    const parsed: unknown = JSON.parse(value.toString('utf8'));
    const eventId = (parsed as { eventId?: unknown } | null)?.eventId;
    return typeof eventId === 'string' && isStorableText(eventId, EVENT_ID_MAX_CODE_POINTS) ? eventId : undefined;
  } catch {
    return undefined;
  }
}
