/**
 * Applies event rows so that the ones the database refuses for their data are singled out
 * instead of failing the whole group: each group runs under a savepoint, and a refused group
 * is rolled back to it and split until the refused rows stand alone. The rest are applied in
 * their order, in the caller's transaction.
 *
 * A refused group is halved while refusals are rare: k refused rows among n cost about
 * 2k·log2(n) extra groups. Once a quarter or more of the rows decided so far were refused, a
 * refused group is tried row by row instead, about one group per row: halving would try
 * nearly every row alone anyway, plus all the groups above them (2n groups for a batch a
 * trigger refuses whole, each group three round trips). A batch nothing is wrong with costs
 * the one group (its savepoint).
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

/** Refused rows per row decided from which a refused group is tried row by row. */
const ROW_BY_ROW_DENSITY = 1 / 4;

/**
 * Any failure that is not a data error propagates (the caller's transaction is lost).
 *
 * Deferred constraints (a DEFERRABLE constraint or constraint trigger an operator added) are
 * made immediate for the transaction first: deferred, they refuse the rows only at COMMIT,
 * after every savepoint, where no row can be singled out, and the same batch would be
 * refused at every retry for ever.
 *
 * The fence rows of all the rows' hunts are locked once, before the first group, not in
 * every group (a hunt the database refuses a fence row for has its rows refused with it,
 * see lockFencesIsolating): each group's fence upsert wrote a new version of every hunt's row, all kept
 * alive by the one transaction, and each later group walked them. A few dozen refused rows
 * among 5,000 took 30 s, 400 rows of 400 hunts 45 s, a backfill chunk longer than its
 * heartbeat timeout, attempt after attempt.
 */
export async function applyIsolating(client: pg.ClientBase, rows: EventRows): Promise<Isolated> {
  const count = rowCount(rows);
  if (count === 0) return { inserted: 0, refused: [] };
  await client.query('SET CONSTRAINTS ALL IMMEDIATE');
  const refusedHunts = await lockFencesIsolating(client, rows.huntIds);
  const refused: Isolated['refused'] = [];
  let inserted = 0;
  let decided = 0;
  // Groups [from, to) still to try, the next on top: taken in row order. Rows of a hunt
  // whose fence row the database refused are refused with it, untried.
  const pending: [number, number][] = [];
  for (let from = 0; from < count; ) {
    const refusal = refusedHunts.get(rows.huntOf[from] as number);
    if (refusal) {
      refused.push({ index: from, err: refusal.err });
      decided++;
      from++;
      continue;
    }
    let to = from + 1;
    while (to < count && !refusedHunts.has(rows.huntOf[to] as number)) to++;
    pending.unshift([from, to]);
    from = to;
  }
  for (let group = pending.pop(); group; group = pending.pop()) {
    const [from, to] = group;
    const outcome = await tryGroup(client, sliceRows(rows, from, to));
    if (outcome.applied) {
      inserted += outcome.inserted;
      decided += to - from;
    } else if (to - from === 1) {
      refused.push({ index: from, err: outcome.err });
      decided++;
    } else if (refused.length >= decided * ROW_BY_ROW_DENSITY && decided > 0) {
      for (let i = to - 1; i >= from; i--) pending.push([i, i + 1]);
    } else {
      const middle = from + Math.ceil((to - from) / 2);
      pending.push([middle, to], [from, middle]);
    }
  }
  return { inserted, refused: refused.sort((a, b) => a.index - b.index) };
}

/**
 * Locks the fence rows of all the rows' hunts, as applyEventRows would. Writing a fence row
 * can be refused for its data too (a CHECK, a foreign key to a registry of hunts, a trigger
 * on `hunts`): then each hunt is locked alone, in the same byte order, and the refused ones
 * are returned (by index in `huntIds`) so their rows are refused, not the whole batch.
 */
async function lockFencesIsolating(client: pg.ClientBase, huntIds: readonly string[]): Promise<Map<number, { err: unknown }>> {
  const refused = new Map<number, { err: unknown }>();
  const all = await underSavepoint(client, () => lockHuntFences(client, [...huntIds].sort()));
  if (all.ok) return refused;
  const order = huntIds.map((huntId, index) => ({ huntId, index })).sort((a, b) => (a.huntId < b.huntId ? -1 : a.huntId > b.huntId ? 1 : 0));
  for (const { huntId, index } of order) {
    const one = await underSavepoint(client, () => lockHuntFences(client, [huntId]));
    if (!one.ok) refused.set(index, { err: one.err });
  }
  return refused;
}

/** Runs `work` under a savepoint; a data error rolls it back and is returned, any other failure propagates. */
async function underSavepoint(client: pg.ClientBase, work: () => Promise<unknown>): Promise<{ ok: true } | { ok: false; err: unknown }> {
  await client.query('SAVEPOINT isolate');
  try {
    await work();
    await client.query('RELEASE SAVEPOINT isolate');
    return { ok: true };
  } catch (err) {
    if (!isDataError(err)) throw err;
    await client.query('ROLLBACK TO SAVEPOINT isolate; RELEASE SAVEPOINT isolate');
    return { ok: false, err };
  }
}

type GroupOutcome = { applied: true; inserted: number } | { applied: false; err: unknown };

/** Applies one group under a savepoint; a data error rolls the group back and is returned. */
async function tryGroup(client: pg.ClientBase, rows: EventRows): Promise<GroupOutcome> {
  let inserted = 0;
  const outcome = await underSavepoint(client, async () => {
    inserted = (await applyEventRows(client, rows, { fenced: true })).inserted;
  });
  return outcome.ok ? { applied: true, inserted } : { applied: false, err: outcome.err };
}
