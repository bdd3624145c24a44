/**
 * Migration 020 on the real Postgres: flushes before it wrote a minute from every event
 * committed at the time, past the watermark too, and flushes after it add the events past
 * the watermark to their minutes. The migration rewrites those minutes from the events the
 * watermark covers and notes their players, so the next flush counts nothing twice.
 */
import { describe, expect, it } from 'vitest';
import { flushRollupChunk, upsertWindowsSql } from '../../src/store/batch/rollups';
import { migrate } from '../../src/store/migrate';
import { useTestDatabase } from '../helpers/database-fixture';
import { rollupsFromScratch, storedRollups, type RollupUnit } from '../helpers/rollups';
import { clueFound, hintUsed } from '../helpers/event-builders';
import { applyInOneTransaction } from '../helpers/stored-events';

const db = useTestDatabase();

const allWindows = (unit: 'minute' | 'hour') => `SELECT DISTINCT hunt_id, date_trunc('${unit}', occurred_at, 'UTC') AS window_start FROM events`;

const fromScratch = (unit: RollupUnit) => rollupsFromScratch(db.pool, unit);

describe('migration 020 (rollup_minute_players)', () => {
  it('rewrites the minutes an older flush counted past its watermark, so the first flush after it counts no event twice', async () => {
    // The database as a version before 020 left it.
    await db.pool.query('DROP TABLE rollup_minute_players');
    await db.pool.query('DELETE FROM schema_migrations WHERE id = 20');
    await applyInOneTransaction(db.pool, [
      clueFound({ eventId: 'a', huntId: 'h1', playerId: 'p1', clueId: 'c1', points: 10, occurredAt: '2026-11-23T10:00:05Z' }),
      clueFound({ eventId: 'b', huntId: 'h1', playerId: 'p2', clueId: 'c2', points: 20, occurredAt: '2026-11-23T10:05:05Z' }),
    ]);
    const { rows } = await db.pool.query<{ seq: number }>('SELECT max(seq) AS seq FROM events');
    await applyInOneTransaction(db.pool, [
      hintUsed({ eventId: 'c', huntId: 'h1', playerId: 'p3', penalty: 5, occurredAt: '2026-11-23T10:00:10Z' }),
      clueFound({ eventId: 'd', huntId: 'h1', playerId: 'p1', clueId: 'c3', points: 7, occurredAt: '2026-11-23T10:00:20Z' }),
      clueFound({ eventId: 'e', huntId: 'h2', playerId: 'p1', clueId: 'c1', points: 1, occurredAt: '2026-11-23T12:00:00Z' }),
    ]);
    // The older flush of the first two events: its minutes (and hours) from every event
    // committed then, the three past its watermark too.
    await db.pool.query(upsertWindowsSql('minute', `${allWindows('minute')} WHERE seq <= ${rows[0]!.seq}`));
    await db.pool.query(upsertWindowsSql('hour', `${allWindows('hour')} WHERE seq <= ${rows[0]!.seq}`));
    await db.pool.query(`INSERT INTO rollup_hour_players SELECT DISTINCT hunt_id, date_trunc('hour', occurred_at, 'UTC'), player_id FROM events ON CONFLICT DO NOTHING`);
    await db.pool.query(`UPDATE job_watermarks SET last_seq = $1 WHERE job = 'rollupFlush'`, [rows[0]!.seq]);
    expect((await storedRollups(db.pool, 'minute')).map((r) => r.events)).toEqual([3, 1]);

    const client = await db.pool.connect();
    try {
      expect((await migrate(client)).map((m) => m.id)).toEqual([20]);
    } finally {
      client.release();
    }
    expect((await storedRollups(db.pool, 'minute')).map((r) => r.events)).toEqual([1, 1]);
    expect(await flushRollupChunk(db.pool, 1000, 0)).toMatchObject({ events: 3 });

    expect(await storedRollups(db.pool, 'minute')).toEqual(await fromScratch('minute'));
    expect(await storedRollups(db.pool, 'hour')).toEqual(await fromScratch('hour'));
    const noted = await db.pool.query(`SELECT hunt_id, window_start, player_id FROM rollup_minute_players ORDER BY 1, 2, 3`);
    const players = await db.pool.query(`SELECT DISTINCT hunt_id, date_trunc('minute', occurred_at, 'UTC') AS window_start, player_id FROM events ORDER BY 1, 2, 3`);
    expect(noted.rows).toEqual(players.rows);
    expect(noted.rows).toHaveLength(4);
  });

  it('widens the counts: a minute summed past 2^31 events still takes the next flush', async () => {
    await applyInOneTransaction(db.pool, [clueFound({ eventId: 'busy-1', huntId: 'busy', playerId: 'p1', clueId: 'c1', points: 1, occurredAt: '2026-11-23T15:00:00Z' })]);
    expect(await flushRollupChunk(db.pool, 1000, 0)).toMatchObject({ events: 1 });
    // As a frozen client clock makes it, flush after flush.
    await db.pool.query(`UPDATE rollup_minute SET events = 2147483647, clues_found = 2147483647 WHERE hunt_id = 'busy'`);
    await applyInOneTransaction(db.pool, [clueFound({ eventId: 'busy-2', huntId: 'busy', playerId: 'p2', clueId: 'c2', points: 1, occurredAt: '2026-11-23T15:00:30Z' })]);
    expect(await flushRollupChunk(db.pool, 1000, 0)).toMatchObject({ events: 1 });
    const minute = await db.pool.query(`SELECT events, clues_found FROM rollup_minute WHERE hunt_id = 'busy'`);
    expect(minute.rows).toEqual([{ events: 2147483648, clues_found: 2147483648 }]);
    const hour = await db.pool.query(`SELECT events FROM rollup_hour WHERE hunt_id = 'busy'`);
    expect(hour.rows).toEqual([{ events: 2147483648 }]);
  });
});
