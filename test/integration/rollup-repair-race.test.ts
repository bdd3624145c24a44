/**
 * The data-quality repair of rollup windows beside a scheduled flush, on the real Postgres:
 * the repair read the windows, a late event landed in one and a flush rolled it up and moved
 * its watermark past it, then the repair wrote its older aggregate over the flush's. No
 * later flush looked at that window again. The two now take turns on the watermark's row.
 */
import { describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { flushRollupChunk, repairStaleWindows, staleWindowsSql } from '../../src/store/batch/rollups';
import { useTestDatabase } from '../helpers/database-fixture';
import { applyInOneTransaction } from '../helpers/stored-events';
import { clueFound } from '../helpers/event-builders';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();

const store = (events: HuntEvent[]) =>
  applyInOneTransaction(db.pool, events);
const clue = (eventId: string, huntId: string, occurredAt: string) => clueFound({ eventId, huntId, playerId: 'p1', clueId: `c-${eventId}`, points: 10, occurredAt });
const lockWaits = async () =>
  (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0]!.n;

describe('a rollup repair beside a flush', () => {
  it('never writes an older aggregate over a window the flush rolled up meanwhile', async () => {
    await store([clue('e1', 'a', '2026-11-22T10:00:10Z'), clue('e2', 'b', '2026-11-22T10:00:10Z')]);
    expect(await flushRollupChunk(db.pool, 1000, 0)).toMatchObject({ events: 2 });
    await db.pool.query('UPDATE rollup_minute SET events = 99'); // both windows drifted: the repair's work

    // Another session holds window a's row, so the repair stops between reading the
    // windows and writing them, as a long repair over many windows would.
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM rollup_minute WHERE hunt_id = 'a' FOR UPDATE`);
      const repair = repairStaleWindows(db.pool, 'minute');
      await waitFor('the repair to wait for window a', async () => (await lockWaits()) === 1);
      // A late event lands in window b, and the scheduled flush rolls it up.
      await store([clue('e3', 'b', '2026-11-22T10:00:20Z')]);
      let flushed = false;
      const flush = flushRollupChunk(db.pool, 1000, 0).finally(() => (flushed = true));
      await waitFor('the flush to end or wait its turn', async () => flushed || (await lockWaits()) === 2);
      await holder.query('COMMIT');
      await repair;
      await flush;
    } finally {
      holder.release();
    }

    const windows = await db.pool.query<{ hunt_id: string; events: number }>('SELECT hunt_id, events FROM rollup_minute ORDER BY hunt_id');
    expect(windows.rows).toEqual([{ hunt_id: 'a', events: 1 }, { hunt_id: 'b', events: 2 }]);
    expect((await db.pool.query(staleWindowsSql('minute'))).rows).toEqual([]);
  });
});
