/**
 * The locks a reprocess step takes, in the order it takes them, and the errors that name who
 * held them up. Every wait that could hold the hot path back happens before the fence, or is
 * declined when it would:
 *
 * 1. keepMaintenanceOff: SHARE UPDATE EXCLUSIVE on the tables the step locks under the fence,
 *    which the hot path's writes do not conflict with, so waiting for a VACUUM costs it nothing.
 * 2. the checks for sessions that have held those tables for a while (assertNoLongHolders, and
 *    takeFence's own), after the wait, so they still hold when the fence is asked for.
 * 3. takeFence: `LOCK TABLE hunts IN EXCLUSIVE MODE`, then (the swap) lockForDrop.
 *
 * Each lock waits at most lock_timeout; a step that times out fails naming the holders, and the
 * workflow retries it.
 */
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import { describeSessions, THIS_DATABASE } from '../sessions';
import { SqlState, sqlStateOf } from '../sql-state';

/** How long a session may have held a lock on a table before a step declines to queue behind it. */
const LONG_HOLD_SECONDS = 2;

/**
 * Waits, before the fence, until no VACUUM, ANALYZE or index build works on `tables` (the fence
 * table and those the step locks under it), and keeps new ones off them to the end of the
 * transaction: SHARE UPDATE EXCLUSIVE, the lock those take, which neither the hot path's writes
 * (ROW EXCLUSIVE) nor reads conflict with. Autovacuum gives way to a lock request waiting on it
 * only after deadlock_timeout (1 s by default), and an anti-wraparound run not at all: a swap
 * that met it under the fence held every hot-path commit back that long (experiments §65).
 * Sets lock_timeout for the rest of the transaction. (A table's TOAST table is not covered:
 * these tables' rows are small, and their TOAST tables next to empty.)
 */
export async function keepMaintenanceOff(client: pg.ClientBase, tables: readonly string[], lockTimeoutMs: number): Promise<void> {
  await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${lockTimeoutMs}ms`]);
  await client.query('SAVEPOINT maintenance');
  try {
    await client.query(`LOCK TABLE ${tables.map((table) => escapeIdentifier(table)).join(', ')} IN SHARE UPDATE EXCLUSIVE MODE`);
  } catch (err) {
    if (sqlStateOf(err) !== SqlState.lockNotAvailable) throw err;
    await client.query('ROLLBACK TO SAVEPOINT maintenance');
    throw new MaintenanceBusyError(tables, lockTimeoutMs, await maintenanceHolders(client, tables));
  }
}

/**
 * The fence. lock_timeout bounds how long the hot path queues behind our lock request
 * (it waits on in-flight transactions first); on timeout the step fails and is retried.
 * The hot path's own transactions end within a second, so a fence not free in time is held
 * by something else, often a session left idle in a transaction: the failure names it, as
 * every retry would fail the same way until that session ends.
 */
export async function takeFence(client: pg.ClientBase, lockTimeoutMs: number): Promise<void> {
  await keepMaintenanceOff(client, ['hunts'], lockTimeoutMs);
  // Not queued behind a session that has held hunts for a while (a reconcile holds ROW SHARE
  // through its recompute, minutes for a big hunt): the queued request holds back every
  // hot-path commit behind it, all hunts, for the whole lock_timeout, on every retry.
  const longHolders = await fenceHolders(client, LONG_HOLD_SECONDS);
  if (longHolders.length > 0) throw new FenceBusyError(lockTimeoutMs, longHolders, 'held long');
  await client.query('SAVEPOINT fence');
  try {
    await client.query('LOCK TABLE hunts IN EXCLUSIVE MODE');
  } catch (err) {
    if (sqlStateOf(err) !== SqlState.lockNotAvailable) throw err;
    await client.query('ROLLBACK TO SAVEPOINT fence'); // the transaction is usable again, to ask who holds it
    throw new FenceBusyError(lockTimeoutMs, await fenceHolders(client));
  }
}

/** The tables a swap drops, and the projection they make up (for messages). */
export interface LiveTables {
  projection: string;
  tables: readonly string[];
}

/**
 * The swap drops the live tables, which waits for every session reading them, while the
 * fence holds every commit of the hot path (and leaderboard reads queue behind the drop): a
 * long reader (a dump, an analyst's open transaction, a data-quality check) froze ingest for
 * the whole lock_timeout on every attempt, for as long as it read. So the swap does not
 * start while a session has held a lock on them for a while; the step retries, naming it.
 * (The read API's reads end within its statement limit, a few seconds.)
 */
export async function assertNoLongHolders(client: pg.ClientBase, live: LiveTables, lockTimeoutMs: number): Promise<void> {
  const holders = await tableHolders(client, live.tables, LONG_HOLD_SECONDS);
  if (holders.length > 0) throw new LiveTablesBusyError(live, lockTimeoutMs, holders);
}

/** The live tables, for the drop, within lock_timeout (set by the fence); a reader still on them past it is named. */
export async function lockForDrop(client: pg.ClientBase, live: LiveTables, lockTimeoutMs: number): Promise<void> {
  await client.query('SAVEPOINT live_tables');
  try {
    await client.query(`LOCK TABLE ${live.tables.map((table) => escapeIdentifier(table)).join(', ')} IN ACCESS EXCLUSIVE MODE`);
  } catch (err) {
    if (sqlStateOf(err) !== SqlState.lockNotAvailable) throw err;
    await client.query('ROLLBACK TO SAVEPOINT live_tables');
    throw new LiveTablesBusyError(live, lockTimeoutMs, await tableHolders(client, live.tables, 0));
  }
}

/** A VACUUM, ANALYZE or index build kept the tables past lock_timeout; the fence was not asked for. Retried by the workflow. */
export class MaintenanceBusyError extends Error {
  constructor(tables: readonly string[], lockTimeoutMs: number, holders: string[]) {
    super(
      `a VACUUM, ANALYZE or index build on ${tables.join(', ')} did not give way within ${lockTimeoutMs} ms` +
        `${holders.length === 0 ? ' (none holds them now: it ended, or the request waited behind another one for them)' : `: ${holders.join('; ')}`}. ` +
        'The fence was not asked for, so the hot path goes on; the step retries. An anti-wraparound autovacuum does not give way: let it finish',
    );
    this.name = 'MaintenanceBusyError';
  }
}

/** The fence was not free within lock_timeout; retried by the workflow. */
export class FenceBusyError extends Error {
  constructor(lockTimeoutMs: number, holders: string[], why: 'timed out' | 'held long' = 'timed out') {
    super(
      (why === 'held long'
        ? `the fence (LOCK TABLE hunts IN EXCLUSIVE MODE) was not asked for: sessions have held hunts for over ${LONG_HOLD_SECONDS} s, and the hot path would queue behind the request; `
        : `the fence (LOCK TABLE hunts IN EXCLUSIVE MODE) was not free within ${lockTimeoutMs} ms; `) +
        (holders.length === 0
          ? 'the sessions that held it have ended since; the step retries'
          : `held by ${holders.join('; ')}. The step retries, holding the hot path back up to ${lockTimeoutMs} ms each time, until these end: finish or cancel them (pg_cancel_backend, pg_terminate_backend)`),
    );
    this.name = 'FenceBusyError';
  }
}

/** Sessions hold the live tables that the swap must drop; retried by the workflow. */
export class LiveTablesBusyError extends Error {
  constructor(live: LiveTables, lockTimeoutMs: number, holders: string[]) {
    super(
      `reprocess ${live.projection}: the swap waits for sessions using the live tables (${live.tables.join(', ')}): ` +
        `${holders.length === 0 ? 'they have ended since' : holders.join('; ')}. The step retries, holding the hot path back up to ${lockTimeoutMs} ms ` +
        'only once none has held them for long: finish or cancel long readers of these tables (a dump, an open transaction)',
    );
    this.name = 'LiveTablesBusyError';
  }
}

/** Sessions (autovacuum's workers too) holding a lock on `tables` that SHARE UPDATE EXCLUSIVE waits for, described. */
async function maintenanceHolders(client: pg.ClientBase, tables: readonly string[]): Promise<string[]> {
  const { rows } = await client.query<{ pid: number }>(
    `SELECT DISTINCT l.pid FROM pg_locks l
      WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid() AND l.database = ${THIS_DATABASE}
        AND l.relation = ANY(SELECT unnest($1::text[])::regclass)
        AND l.mode IN ('ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')`,
    [tables.map((table) => escapeIdentifier(table))],
  );
  return describeSessions(client, rows.map((r) => r.pid));
}

/**
 * Other client sessions holding a lock on `tables`, in a transaction open for at least
 * `heldForSeconds`, described. Client sessions only: autovacuum was waited out before
 * (keepMaintenanceOff), and cannot start on them again.
 */
async function tableHolders(client: pg.ClientBase, tables: readonly string[], heldForSeconds: number): Promise<string[]> {
  const { rows } = await client.query<{ pid: number }>(
    `SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
        AND l.database = ${THIS_DATABASE} AND l.relation = ANY(SELECT unnest($1::text[])::regclass)
        AND a.xact_start <= clock_timestamp() - make_interval(secs => $2)`,
    [tables.map((table) => escapeIdentifier(table)), heldForSeconds],
  );
  return describeSessions(client, rows.map((r) => r.pid));
}

/**
 * Other sessions holding a lock on `hunts` that the fence waits for (every mode but ACCESS
 * SHARE, which plain reads take), in a transaction open for at least `heldForSeconds`.
 */
async function fenceHolders(client: pg.ClientBase, heldForSeconds = 0): Promise<string[]> {
  const { rows } = await client.query<{ pid: number }>(
    `SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'relation' AND l.database = ${THIS_DATABASE} AND l.relation = 'hunts'::regclass AND l.granted
        AND l.mode <> 'AccessShareLock' AND l.pid <> pg_backend_pid()
        AND a.xact_start <= clock_timestamp() - make_interval(secs => $1)`,
    [heldForSeconds],
  );
  return describeSessions(client, rows.map((r) => r.pid));
}
