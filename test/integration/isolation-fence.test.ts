/**
 * Isolating the rows the database refuses (src/store/hot-path/isolate.ts) takes the hunts'
 * fence rows once for the whole transaction. It used to take them again in every savepoint
 * group: each time a new version of every hunt's row, all kept alive by the one
 * transaction, so the cost grew with groups × hunts. A few dozen refused rows among 5,000
 * took 30 s, longer than the stall limit, and a backfill chunk outlived its heartbeat
 * timeout on every attempt.
 */
import { describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { rowsOf } from '../../src/store/hot-path/event-rows';
import { applyIsolating } from '../../src/store/hot-path/isolate';
import { withTransaction } from '../../src/store/transaction';
import { foldEvents } from '../../src/rules/reference';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { projectionOf } from '../helpers/ingest';

const db = useTestDatabase();

describe('isolating refused rows', () => {
  it('takes the fence once, however many groups it tries, and applies exactly the rest', async () => {
    await db.pool.query(`CREATE FUNCTION refuse_banned() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.player_id LIKE 'banned%' THEN RAISE EXCEPTION 'player % is banned', NEW.player_id; END IF; RETURN NEW; END $$`);
    await db.pool.query(`CREATE TRIGGER refuse_banned BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_banned()`);
    // Counts the statements that write fence rows, in Postgres itself.
    await db.pool.query(`CREATE TABLE fence_statements (at timestamptz DEFAULT clock_timestamp())`);
    await db.pool.query(`CREATE FUNCTION count_fence_statement() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO fence_statements DEFAULT VALUES; RETURN NULL; END $$`);
    await db.pool.query(`CREATE TRIGGER count_fence_statement AFTER INSERT ON hunts FOR EACH STATEMENT EXECUTE FUNCTION count_fence_statement()`);

    // 64 rows over 64 hunts, every other one refused: dozens of savepoint groups.
    const base = Date.parse('2026-11-01T00:00:00Z');
    const events: HuntEvent[] = Array.from({ length: 64 }, (_, i) =>
      clueFound({ eventId: `iso-${i}`, huntId: `hunt-${i}`, playerId: i % 2 === 1 ? `banned-${i}` : `p-${i}`, clueId: 'c', points: 10, occurredAt: new Date(base + i * 1000).toISOString() }),
    );
    const result = await withTransaction(db.pool, (client) => applyIsolating(client, rowsOf(events.map((event) => ({ event, source: 'test' })))));

    expect(result.refused.map((r) => r.index)).toEqual(events.map((_, i) => i).filter((i) => i % 2 === 1));
    expect(result.inserted).toBe(32);
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events.filter((_, i) => i % 2 === 0)));
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM fence_statements');
    expect(rows[0]?.n).toBe(1);
  });

  it('tries rows one by one once refusals are common: a batch refused whole costs about one group per row, not two', async () => {
    // The trigger above refuses every `banned` player; here every row is refused, as by a
    // trigger an operator added that refuses everything. Halving alone tried 2n - 1 groups.
    const base = Date.parse('2026-11-02T00:00:00Z');
    const events: HuntEvent[] = Array.from({ length: 256 }, (_, i) =>
      clueFound({ eventId: `all-${i}`, huntId: `hunt-${i % 8}`, playerId: `banned-all-${i}`, clueId: 'c', points: 10, occurredAt: new Date(base + i * 1000).toISOString() }),
    );
    let groups = 0;
    const result = await withTransaction(db.pool, (client) => {
      const counting = new Proxy(client, {
        get: (target, key) => (key === 'query' ? (text: unknown, ...rest: unknown[]) => {
          if (text === 'SAVEPOINT isolate') groups++;
          return (target.query as (...args: unknown[]) => unknown).call(target, text, ...rest);
        } : Reflect.get(target, key)),
      });
      return applyIsolating(counting, rowsOf(events.map((event) => ({ event, source: 'test' }))));
    });
    expect(result.refused.map((r) => r.index)).toEqual(events.map((_, i) => i));
    expect(result.inserted).toBe(0);
    // The halving down to the first row (9 groups), then the 8 groups pending above it, each refused once.
    expect(groups).toBeLessThanOrEqual(256 + 2 * Math.log2(256) + 1);
    expect(groups).toBeGreaterThanOrEqual(256);
  });
});
