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
/** From no events and no rollups: two clues of hunt `huntId` in the minute `minute` (ISO, to the minute), flushed. */
async function twoCluesFlushed(huntId: string, minute: string): Promise<void> {
  await db.pool.query('TRUNCATE events, rollup_minute, rollup_hour, rollup_minute_players, rollup_hour_players');
  await db.pool.query(`UPDATE job_watermarks SET last_seq = 0 WHERE job = 'rollupFlush'`);
  await store([clue(`${huntId}1`, huntId, `${minute}:10Z`), clue(`${huntId}2`, huntId, `${minute}:20Z`)]);
  expect(await flushRollupChunk(db.pool, 1000, 0)).toMatchObject({ events: 2 });
}
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

describe('a rollup repair of a window holding events the watermark does not cover yet', () => {
  it('counts only the covered ones, so the flush that adds the rest counts none twice', async () => {
    await twoCluesFlushed('c', '2026-11-22T11:00');
    await db.pool.query(`UPDATE rollup_minute SET events = 99`);
    await db.pool.query(`UPDATE rollup_hour SET events = 99`);
    expect((await db.pool.query(staleWindowsSql('minute'))).rows).toHaveLength(1);

    // A late event of another player lands in the drifted window before the repair writes it
    // (found stale while it was not there yet), and no flush runs in between.
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM job_watermarks WHERE job = 'rollupFlush' FOR UPDATE`);
      const repairs = Promise.all([repairStaleWindows(db.pool, 'minute'), repairStaleWindows(db.pool, 'hour')]);
      await waitFor('both repairs to wait for the watermark', async () => (await lockWaits()) === 2);
      await store([clueFound({ eventId: 'c3', huntId: 'c', playerId: 'p2', clueId: 'c-c3', points: 10, occurredAt: '2026-11-22T11:00:30Z' })]);
      await holder.query('COMMIT');
      expect(await repairs).toEqual([1, 1]);
    } finally {
      holder.release();
    }
    expect(await flushRollupChunk(db.pool, 1000, 0)).toMatchObject({ events: 1 });

    const minute = await db.pool.query('SELECT events, players, clue_points::int FROM rollup_minute');
    expect(minute.rows).toEqual([{ events: 3, players: 2, clue_points: 30 }]);
    const hour = await db.pool.query('SELECT events, players, clue_points::int FROM rollup_hour');
    expect(hour.rows).toEqual([{ events: 3, players: 2, clue_points: 30 }]);
    expect((await db.pool.query(staleWindowsSql('minute'))).rows).toEqual([]);
    expect((await db.pool.query(staleWindowsSql('hour'))).rows).toEqual([]);
  });
});

describe('a drifted window that already holds an event the watermark does not cover', () => {
  it('is found and repaired, not passed over until no event of it is pending', async () => {
    await twoCluesFlushed('d', '2026-11-22T12:00');
    await db.pool.query(`UPDATE rollup_minute SET events = events + 3`); // drifted (an older worker's flush, say)
    // A late event lands in the window before the check; no flush runs (and a minute a client
    // with a stuck clock keeps filling has one pending at every check).
    await store([clueFound({ eventId: 'd3', huntId: 'd', playerId: 'p2', clueId: 'c-d3', points: 10, occurredAt: '2026-11-22T12:00:30Z' })]);

    // Before, the window was left out while it held a pending event: found by no check, and
    // the repair's own pass over the windows skipped it too, reporting nothing left to fix.
    expect((await db.pool.query(staleWindowsSql('minute'))).rows).toEqual([
      { hunt_id: 'd', window_start: new Date('2026-11-22T12:00:00Z'), unit: 'minute', problem: 'differs' },
    ]);
    expect(await repairStaleWindows(db.pool, 'minute')).toBe(1);
    expect(await flushRollupChunk(db.pool, 1000, 0)).toMatchObject({ events: 1 });
    const minute = await db.pool.query('SELECT events, players, clue_points::int FROM rollup_minute');
    expect(minute.rows).toEqual([{ events: 3, players: 2, clue_points: 30 }]);
    expect((await db.pool.query(staleWindowsSql('minute'))).rows).toEqual([]);
    expect((await db.pool.query(staleWindowsSql('hour'))).rows).toEqual([]);
  });
});
