/**
 * Applies event rows so that the ones the database refuses for their data are singled out
 * instead of failing the whole group: each group runs under a savepoint, and a refused group
 * is rolled back to it and halved until the refused rows stand alone. The rest are applied
 * in their order, in the caller's transaction. k refused rows among n cost about 2k·log2(n)
 * extra statements; a batch nothing is wrong with costs two (the savepoint).
 */
import type pg from 'pg';
import { applyEventRows, lockHuntFences } from './apply-events';
import { isDataError } from './errors';
import { rowCount, sliceRows, type EventRows } from './event-rows';

export interface Isolated {
  inserted: number;
  /** Rows the database refused, by index in the rows given, with its error. */
  refused: { index: number; err: unknown }[];
}

/**
 * Any failure that is not a data error propagates (the caller's transaction is lost).
 *
 * The fence rows of all the rows' hunts are locked once, before the first savepoint, not in
 * every group: each group's fence upsert wrote a new version of every hunt's row, all kept
 * alive by the one transaction, and each later group walked them. A few dozen refused rows
 * among 5,000 took 30 s, 400 rows of 400 hunts 45 s, a backfill chunk longer than its
 * heartbeat timeout, attempt after attempt.
 */
export async function applyIsolating(client: pg.ClientBase, rows: EventRows): Promise<Isolated> {
  if (rowCount(rows) === 0) return { inserted: 0, refused: [] };
  await lockHuntFences(client, [...rows.huntIds].sort());
  return isolateGroups(client, rows, 0);
}

async function isolateGroups(client: pg.ClientBase, rows: EventRows, firstIndex: number): Promise<Isolated> {
  const count = rowCount(rows);
  if (count === 0) return { inserted: 0, refused: [] };
  await client.query('SAVEPOINT isolate');
  try {
    const result = await applyEventRows(client, rows, { fenced: true });
    await client.query('RELEASE SAVEPOINT isolate');
    return { inserted: result.inserted, refused: [] };
  } catch (err) {
    if (!isDataError(err)) throw err;
    await client.query('ROLLBACK TO SAVEPOINT isolate');
    await client.query('RELEASE SAVEPOINT isolate');
    if (count === 1) return { inserted: 0, refused: [{ index: firstIndex, err }] };
  }
  const middle = Math.ceil(count / 2);
  const first = await isolateGroups(client, sliceRows(rows, 0, middle), firstIndex);
  const second = await isolateGroups(client, sliceRows(rows, middle, count), firstIndex + middle);
  return { inserted: first.inserted + second.inserted, refused: [...first.refused, ...second.refused] };
}
