/**
 * Applies events so that the ones the database refuses for their data are singled out
 * instead of failing the whole group: each group runs under a savepoint, and a refused group
 * is rolled back to it and halved until the refused events stand alone. The rest are
 * applied in their order, in the caller's transaction. k refused events among n cost about
 * 2k·log2(n) extra statements; a batch nothing is wrong with costs two (the savepoint).
 */
import type pg from 'pg';
import { applyEvents, type AcceptedEvent } from './apply-events';
import { isDataError } from './errors';

export interface Isolated {
  inserted: number;
  refused: { event: AcceptedEvent; err: unknown }[];
}

/**
 * Applies `events` in order inside the caller's transaction, each group under a savepoint:
 * a group the database refuses for its data is rolled back and halved until the refused
 * events stand alone. Any other failure propagates (the caller's transaction is lost).
 */
export async function applyIsolating(client: pg.ClientBase, events: readonly AcceptedEvent[]): Promise<Isolated> {
  if (events.length === 0) return { inserted: 0, refused: [] };
  await client.query('SAVEPOINT isolate');
  try {
    const result = await applyEvents(client, events);
    await client.query('RELEASE SAVEPOINT isolate');
    return { inserted: result.inserted, refused: [] };
  } catch (err) {
    if (!isDataError(err)) throw err;
    await client.query('ROLLBACK TO SAVEPOINT isolate');
    await client.query('RELEASE SAVEPOINT isolate');
    if (events.length === 1) return { inserted: 0, refused: [{ event: events[0] as AcceptedEvent, err }] };
  }
  const middle = Math.ceil(events.length / 2);
  const first = await applyIsolating(client, events.slice(0, middle));
  const second = await applyIsolating(client, events.slice(middle));
  return { inserted: first.inserted + second.inserted, refused: [...first.refused, ...second.refused] };
}

