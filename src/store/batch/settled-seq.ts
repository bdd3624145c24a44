/**
 * How far by seq the jobs that follow the event store with a watermark (rollupFlush,
 * reconcile) may go: the newest event stored at least `settleMs` ago, once no event at or
 * below it can still appear.
 *
 * seq is drawn when a row is inserted, not when its transaction commits: with two commit
 * lanes, backfills and replays writing at once, a transaction can commit seq 1100 while
 * another still holds 1000-1099 uncommitted (one that waited on a hunt's fence draws its seqs
 * late, whatever its start time, so no settle time is enough). A watermark moved to 1100
 * then would skip 1000-1099 for good. So the bound is read together with the transactions
 * inserting into `events` at that moment (their locks in pg_locks), and is returned once they
 * have all ended: any seq at or below it is then committed or never will be; a transaction
 * that starts inserting later draws seqs above it.
 *
 * Writers that outlast the wait (a session left idle in a transaction that inserted events,
 * a connection that died mid-transaction) fail the step, naming them: returning "nothing
 * settled" would let the job succeed having done nothing, run after run, with nobody told.
 */
import type pg from 'pg';
import { describeSessions, THIS_DATABASE } from '../sessions';

export interface SettledBound {
  /** The highest seq the job may take (its `fromSeq` when there is nothing new). */
  toSeq: number;
  /** Events in (fromSeq, toSeq]. */
  events: number;
}

const POLL_MS = 20;

/**
 * The newest seq stored now (0 for none): committed rows only, so seqs below it may still be
 * in flight; what may be taken past a watermark is settledBound's.
 */
export async function newestEventSeq(db: pg.ClientBase | pg.Pool): Promise<number> {
  const { rows } = await db.query<{ seq: number }>('SELECT coalesce(max(seq), 0) AS seq FROM events');
  return rows[0]?.seq ?? 0;
}

/**
 * Why the batch plane cannot rely on seq order, if it cannot: a CACHE above 1 on the events'
 * seq sequence (a common tuning) gives each session its own block of values, so an event
 * inserted later can draw a lower seq than one already committed and read past. Reconcile's
 * covering seq, reprocess's fence and the settled bound above all assume the sequence hands
 * values out in order; with a cache they would miss such events without a word. Checked by
 * `hunt worker` at start-up.
 */
export async function seqOrderProblem(db: pg.ClientBase | pg.Pool): Promise<string | undefined> {
  const { rows } = await db.query<{ name: string; cache: number }>(
    `SELECT s.seqrelid::regclass::text AS name, s.seqcache AS cache
       FROM pg_sequence s WHERE s.seqrelid = pg_get_serial_sequence('events', 'seq')::regclass`,
  );
  const sequence = rows[0];
  if (!sequence || sequence.cache <= 1) return undefined;
  return (
    `the events' seq sequence ${sequence.name} has CACHE ${sequence.cache}; reconcile, reprocess and rollupFlush need CACHE 1 ` +
    `(with a cache, an event stored later can take a lower seq, which they would skip): run ALTER SEQUENCE ${sequence.name} CACHE 1`
  );
}

/** Transactions inserting into events did not end within the wait; the step is retried. */
export class UnsettledWritersError extends Error {
  constructor(waitMs: number, writers: string[]) {
    super(
      `transactions inserting into events did not end within ${waitMs} ms, so no watermark can move past them: ` +
        `${writers.length > 0 ? writers.join('; ') : 'they have ended since'}. The step retries; a session idle in a transaction must be ended (pg_terminate_backend)`,
    );
    this.name = 'UnsettledWritersError';
  }
}

/**
 * The settled bound past `fromSeq`, taking at most `maxEvents` events. Waits (up to
 * `waitMs`) for the transactions inserting into events to end; throws UnsettledWritersError,
 * naming them, when they have not.
 */
export async function settledBound(
  client: pg.Pool | pg.ClientBase,
  fromSeq: number,
  settleMs: number,
  maxEvents = Number.MAX_SAFE_INTEGER,
  waitMs = 30_000,
): Promise<SettledBound> {
  // One statement, one snapshot: the bound and the writers at that moment.
  const { rows } = await client.query<{ to_seq: number | null; n: number; writers: string[] }>(
    `SELECT s.to_seq, s.n,
            ARRAY(SELECT DISTINCT virtualtransaction FROM pg_locks
                   WHERE locktype = 'relation' AND database = ${THIS_DATABASE} AND relation = 'events'::regclass AND mode = 'RowExclusiveLock'
                     AND pid <> pg_backend_pid()) AS writers
       FROM (SELECT max(seq) AS to_seq, count(*)::int AS n FROM (
               SELECT seq FROM events
                WHERE seq > $1 AND ingested_at < now() - make_interval(secs => $3::double precision / 1000)
                ORDER BY seq LIMIT $2) settled) s`,
    [fromSeq, Math.min(maxEvents, 2 ** 31 - 1), settleMs],
  );
  const row = rows[0];
  if (!row || row.to_seq === null) return { toSeq: fromSeq, events: 0 };
  if (row.writers.length > 0) {
    const pending = await writersStillOpen(client, row.writers, waitMs);
    if (pending.length > 0) throw new UnsettledWritersError(waitMs, await describeSessions(client, await pidsOf(client, pending)));
  }
  // Counted again, every event inside the bound: the writers waited for may have committed
  // some, and `n` leaves out those stored too lately to count as settled, whose seq a
  // transaction that began earlier (its fence waited) passed: the flush takes them all.
  const toSeq = row.to_seq;
  const counted = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE seq > $1 AND seq <= $2', [fromSeq, toSeq]);
  return { toSeq, events: counted.rows[0]?.n ?? row.n };
}

/** The virtual transactions among `writers` still open after waiting up to `waitMs` for them. */
async function writersStillOpen(client: pg.Pool | pg.ClientBase, writers: readonly string[], waitMs: number): Promise<string[]> {
  const deadline = performance.now() + waitMs;
  let pending = [...writers];
  while (pending.length > 0) {
    if (performance.now() > deadline) return pending;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const { rows } = await client.query<{ still: string[] }>(
      `SELECT ARRAY(SELECT DISTINCT virtualtransaction FROM pg_locks
                     WHERE locktype = 'relation' AND database = ${THIS_DATABASE} AND relation = 'events'::regclass
                       AND virtualtransaction = ANY($1::text[])) AS still`,
      [pending],
    );
    pending = rows[0]?.still ?? [];
  }
  return [];
}

async function pidsOf(client: pg.Pool | pg.ClientBase, virtualTransactions: readonly string[]): Promise<number[]> {
  const { rows } = await client.query<{ pid: number }>(
    `SELECT DISTINCT pid FROM pg_locks WHERE virtualtransaction = ANY($1::text[]) AND pid IS NOT NULL`,
    [virtualTransactions],
  );
  return rows.map((r) => r.pid);
}
