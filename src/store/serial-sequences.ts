/**
 * Sequences behind the rows they numbered: a database restored without them, or a switchover
 * through logical replication (a blue/green major upgrade), which carries rows but not
 * sequences. Every insert then draws values already taken. Those that collide fail (SQLSTATE
 * 23505 on the column's unique key): taken for a fault of the records, the hot path refused
 * and quarantined valid events (the events' seq), or failed the quarantine of its rejects and
 * the micro-batch with it on every retry, stopping its lane for as long as the retries took
 * to draw past the taken ids (a quarantine id), and reconcile recorded the hunts it found
 * drifted as failing (a drift row's id). Events that fall in a gap of seqs are stored below
 * the batch jobs' watermarks (rollups, reconcile), which never read there again.
 *
 * Brought forward past the newest stored value: safe whenever it runs, since a sequence only
 * moves forward and nothing needs values without gaps. `hunt ingest` and `hunt worker` do it at
 * start-up, and the writers when an insert collides.
 */
import type pg from 'pg';
import type { Logger } from '../log';
import { withTransaction } from './transaction';

/** Every column numbered by a sequence, and its unique key (as Postgres named it, migrations 001 and 004). */
export const SERIAL_COLUMNS = [
  { table: 'events', column: 'seq', constraint: 'events_seq_key' },
  { table: 'quarantine', column: 'id', constraint: 'quarantine_pkey' },
  { table: 'reconcile_drift', column: 'id', constraint: 'reconcile_drift_pkey' },
] as const;

/** The unique keys an insert breaks when its sequence is behind (errors.ts: no record's fault). */
export const SERIAL_CONSTRAINTS: ReadonlySet<string> = new Set(SERIAL_COLUMNS.map((c) => c.constraint));

/** Serializes the check and the setval between processes, so two never move one at once. */
const SEQUENCE_LOCK_KEY = 7_240_115;

export interface SeqAdvance {
  sequence: string;
  /** The sequence's last value before (0: never used). */
  was: number;
  /** The newest stored value, where it is now. */
  now: number;
}

type SerialColumn = (typeof SERIAL_COLUMNS)[number];

/**
 * Moves each sequence behind its column's newest stored value there; says which it moved
 * (none: an empty list). Only the columns this role writes (it may read and insert into the
 * table, and draw from the sequence): a process checks what it writes, and a role made for
 * ingest alone may have no business with reconcile's rows. A sequence behind that the role
 * may not move (setval needs UPDATE on it) fails it with SeqNotMovableError, naming those,
 * once the others are moved.
 */
export async function advanceSequences(pool: pg.Pool): Promise<SeqAdvance[]> {
  return withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [SEQUENCE_LOCK_KEY]);
    const written = await writtenColumns(client);
    if (written.length === 0) return [];
    // Table and column names are this module's constants, never input.
    const { rows } = await client.query<{ sequence: string; last: number | null; newest: number | null; movable: boolean }>(
      written
        .map(
          (c) => `SELECT s.name AS sequence, pg_sequence_last_value(s.name::regclass) AS last, (SELECT max(${c.column}) FROM ${c.table}) AS newest,
                         has_sequence_privilege(s.name, 'UPDATE') AS movable
                    FROM (SELECT pg_get_serial_sequence('${c.table}', '${c.column}') AS name) s`,
        )
        .join(' UNION ALL '),
    );
    const behind = rows.filter((r) => r.newest !== null && r.newest > (r.last ?? 0));
    const advanceOf = (r: (typeof rows)[number]): SeqAdvance => ({ sequence: r.sequence, was: r.last ?? 0, now: Number(r.newest) });
    for (const row of behind.filter((r) => r.movable)) {
      // Never back: the writers draw from it meanwhile, without the lock.
      await client.query('SELECT setval($1::regclass, greatest($2, pg_sequence_last_value($1::regclass)))', [row.sequence, Number(row.newest)]);
    }
    const stuck = behind.filter((r) => !r.movable);
    if (stuck.length > 0) throw new SeqNotMovableError(stuck.map(advanceOf));
    return behind.map(advanceOf);
  });
}

async function writtenColumns(client: pg.ClientBase): Promise<SerialColumn[]> {
  const { rows } = await client.query<{ written: boolean[] }>(
    `SELECT array_agg(has_table_privilege(t, 'SELECT') AND has_table_privilege(t, 'INSERT')
                      AND has_sequence_privilege(pg_get_serial_sequence(t, c), 'USAGE') ORDER BY i) AS written
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(t, c, i)`,
    [SERIAL_COLUMNS.map((c) => c.table), SERIAL_COLUMNS.map((c) => c.column)],
  );
  return SERIAL_COLUMNS.filter((_, i) => rows[0]?.written[i] === true);
}

/** Sequences are behind, and setval was refused (it needs UPDATE on the sequence). */
export class SeqNotMovableError extends Error {
  constructor(readonly behind: readonly SeqAdvance[]) {
    super(
      `${behind.map((b) => `the sequence ${b.sequence} is at ${b.was}, behind the newest stored value ${b.now}`).join('; ')} ` +
        `(a restore or a switchover that did not carry it), and this role may not move it forward: run ${ADVANCE_SEQUENCES_COMMAND} as its owner`,
    );
    this.name = 'SeqNotMovableError';
  }
}

/** The log line's words when sequences were moved. */
export const SEQUENCES_MOVED = 'sequences were behind the stored rows (a restore or a switchover that did not carry them); moved them past the newest stored values';

/**
 * At start-up: moves the sequences that are behind forward, and logs it. Returns the problem
 * when one is behind and this role may not move it: start-up stops then, since every row
 * stored meanwhile would collide (or an event land below the batch jobs' watermarks). Any
 * other failure (an outage) is logged and left: the writers move them when an insert collides.
 */
export async function sequenceProblemAtStartup(pool: pg.Pool, logger: Logger): Promise<string | undefined> {
  try {
    const advanced = await advanceSequences(pool);
    if (advanced.length > 0) logger.warn({ advanced }, SEQUENCES_MOVED);
    return undefined;
  } catch (err) {
    if (err instanceof SeqNotMovableError) return err.message;
    logger.warn({ err }, 'could not check the sequences against the stored rows; going on');
    return undefined;
  }
}

/** What an operator runs when a process may not move the sequences itself (setval needs UPDATE on each). */
export const ADVANCE_SEQUENCES_COMMAND = SERIAL_COLUMNS.map(
  (c) => `SELECT setval(pg_get_serial_sequence('${c.table}', '${c.column}'), (SELECT max(${c.column}) FROM ${c.table}));`,
).join(' ');
