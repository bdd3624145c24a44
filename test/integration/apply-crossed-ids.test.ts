/**
 * Two commits whose batches hold the same eventIds in crossed order (a client reusing ids
 * across hunts, sent to two partitions: two lanes, or two ingest processes). The hunt fences
 * order commits that share a hunt, but the events' primary key is shared by all: inserted in
 * arrival order, each commit held one id's new row and waited for the other's, and Postgres
 * broke the cycle after deadlock_timeout, failing one commit (retried as an outage, a second
 * lost each time). Inserted in one order for every commit, the second waits before it holds
 * anything the first needs.
 */
import { describe, expect, it } from 'vitest';
import { parseOccurredAt, type HuntEvent } from '../../src/events/schema';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();

const accepted = (events: HuntEvent[]) => events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }));
const at = (i: number) => new Date(Date.UTC(2026, 10, 22, 10, 0, i)).toISOString();

describe('commits holding the same eventIds in crossed order', () => {
  it('wait for each other instead of deadlocking, and the first stores each id once', async () => {
    const first = await db.pool.connect();
    const second = await db.pool.connect();
    try {
      const secondPid = (await second.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await first.query('BEGIN');
      await second.query('BEGIN');
      await applyEvents(first, accepted([clueFound({ eventId: 'a', huntId: 'x', playerId: 'p', clueId: 'c1', occurredAt: at(1) })]));
      // The second holds b then a; it must not take b before it has waited for a.
      const crossed = applyEvents(second, accepted([
        clueFound({ eventId: 'b', huntId: 'y', playerId: 'q', clueId: 'c2', occurredAt: at(2) }),
        clueFound({ eventId: 'a', huntId: 'y', playerId: 'q', clueId: 'c1', occurredAt: at(3) }),
      ])).catch((err: unknown) => err);
      // It waits on a either way (before, having taken b first): the first's insert of b
      // below is what tells a deadlock from a wait.
      await waitFor('the second commit to wait on a lock', async () => {
        const { rows } = await db.pool.query(`SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = $1`, [secondPid]);
        return rows[0]?.waiting === true;
      }, { timeoutMs: 10_000, intervalMs: 50 });
      // Before, this waited for the second's b while the second waited for a: 40P01 on one side.
      await applyEvents(first, accepted([clueFound({ eventId: 'b', huntId: 'x', playerId: 'p', clueId: 'c2', occurredAt: at(4) })]));
      await first.query('COMMIT');
      expect(await crossed).toMatchObject({ inserted: 0, duplicates: 2 });
      await second.query('COMMIT');
      const { rows } = await db.pool.query(`SELECT event_id, hunt_id FROM events ORDER BY event_id`);
      expect(rows).toEqual([{ event_id: 'a', hunt_id: 'x' }, { event_id: 'b', hunt_id: 'x' }]);
    } finally {
      await first.query('ROLLBACK').catch(() => undefined);
      await second.query('ROLLBACK').catch(() => undefined);
      first.release();
      second.release();
    }
  });

  it('numbers a batch in arrival order (seq), though it inserts it in eventId order', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const ids = ['s-m', 's-c', 's-x', 's-a', 's-q']; // none stored by the test above
      await applyEvents(client, accepted(ids.map((eventId, i) => clueFound({ eventId, huntId: 'z', playerId: `p${i}`, occurredAt: at(10 + i) }))));
      await client.query('COMMIT');
      const { rows } = await db.pool.query<{ event_id: string }>(`SELECT event_id FROM events WHERE hunt_id = 'z' ORDER BY seq`);
      expect(rows.map((r) => r.event_id)).toEqual(ids);
    } finally {
      client.release();
    }
  });
});
