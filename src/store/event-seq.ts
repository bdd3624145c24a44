/**
 * The events' seq sequence behind the events stored: a database restored without it, or a
 * switchover through logical replication (a blue/green major upgrade), which carries rows
 * but not sequences. Every insert then draws seqs already taken. Those that collide fail
 * (SQLSTATE 23505 on events_seq_key); taken for a fault of the records, they were refused and
 * quarantined, valid events and all. Those that fall in a gap are stored below the batch
 * jobs' watermarks (rollups, reconcile), which never read there again.
 *
 * Brought forward past the newest stored seq: safe whenever it runs, since the sequence only
 * moves forward and nothing needs seqs without gaps. `hunt ingest` and `hunt worker` do it at
 * start-up, and the hot path when an insert collides.
 */
import type pg from 'pg';
import type { Logger } from '../log';
import { SqlState, sqlStateOf } from './sql-state';
import { withTransaction } from './transaction';

/** The unique constraint on events.seq (001_initial.sql), as Postgres named it. */
export const EVENTS_SEQ_CONSTRAINT = 'events_seq_key';

/** Serializes the check and the setval between processes, so two never move it at once. */
const EVENT_SEQ_LOCK_KEY = 7_240_115;

export interface SeqAdvance {
  sequence: string;
  /** The sequence's last value before (0: never used). */
  was: number;
  /** The newest stored seq, where it is now. */
  now: number;
}

/** Moves the sequence to the newest stored seq when it is behind; says so, or undefined when it was not. */
export async function advanceEventSeq(pool: pg.Pool): Promise<SeqAdvance | undefined> {
  return withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [EVENT_SEQ_LOCK_KEY]);
    const { rows } = await client.query<{ sequence: string; last: number | null; newest: number | null }>(
      `SELECT s.name AS sequence, pg_sequence_last_value(s.name::regclass) AS last, (SELECT max(seq) FROM events) AS newest
         FROM (SELECT pg_get_serial_sequence('events', 'seq') AS name) s`,
    );
    const { sequence, last, newest } = rows[0]!;
    if (newest === null || newest <= (last ?? 0)) return undefined;
    const advance = { sequence, was: last ?? 0, now: newest };
    // Never back: the hot path's lanes draw from it meanwhile, without the lock.
    await client.query('SELECT setval($1::regclass, greatest($2, pg_sequence_last_value($1::regclass)))', [sequence, newest]).catch((err: unknown) => {
      throw sqlStateOf(err) === SqlState.insufficientPrivilege ? new SeqNotMovableError(advance, err) : err;
    });
    return advance;
  });
}

/** The sequence is behind, and setval was refused (it needs UPDATE on the sequence). */
export class SeqNotMovableError extends Error {
  constructor(
    readonly behind: SeqAdvance,
    cause: unknown,
  ) {
    super(
      `the events' seq sequence ${behind.sequence} is at ${behind.was}, behind the newest stored seq ${behind.now} ` +
        `(a restore or a switchover that did not carry it), and this role may not move it forward: run ${ADVANCE_EVENT_SEQ_COMMAND} as its owner`,
      { cause },
    );
    this.name = 'SeqNotMovableError';
  }
}

/**
 * At start-up: moves the sequence forward when it is behind, and logs it. Returns the problem
 * when it is behind and this role may not move it: start-up stops then, since every event
 * stored meanwhile would collide or land below the batch jobs' watermarks. Any other failure
 * (an outage) is logged and left: the hot path moves it when an insert collides.
 */
export async function eventSeqProblemAtStartup(pool: pg.Pool, logger: Logger): Promise<string | undefined> {
  try {
    const advanced = await advanceEventSeq(pool);
    if (advanced) logger.warn(advanced, "the events' seq sequence was behind the stored events (a restore or a switchover that did not carry it); moved it past the newest stored seq");
    return undefined;
  } catch (err) {
    if (err instanceof SeqNotMovableError) return err.message;
    logger.warn({ err }, "could not check the events' seq sequence against the stored events; going on");
    return undefined;
  }
}

/** What an operator runs when a process may not move the sequence itself (setval needs UPDATE on it). */
export const ADVANCE_EVENT_SEQ_COMMAND = "SELECT setval(pg_get_serial_sequence('events', 'seq'), (SELECT max(seq) FROM events))";
