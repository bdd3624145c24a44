/**
 * Postgres going back in time under a running `hunt ingest`: a failover to a replica that was
 * behind, or a restore to an earlier point. Its positions and its events go back together, but
 * the consumer fetches on from the positions it holds in memory, so its next commit stored a
 * position past the records of the lost commits (positions never move back), and they were
 * never read again; nothing noticed. Now it refuses to commit below what it loaded or
 * committed, stops, and its restart reads those records again from the positions Postgres holds.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { createTestTopics, sendRecords, startIngestProcess, waitCaughtUp } from '../helpers/ingest';

const db = useTestDatabase();

const records = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => {
    const n = from + i;
    const event = clueFound({ eventId: `back-${n}`, huntId: 'h-back', playerId: `p${n % 7}`, clueId: `c${n}`, points: 1, occurredAt: new Date(Date.now() - 60_000 + n).toISOString() });
    return { key: event.huntId, value: JSON.stringify(event) };
  });

const storedEvents = async () => (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM events WHERE hunt_id = 'h-back'`)).rows[0]?.n;

describe('hunt ingest when Postgres goes back in time', () => {
  it('stops rather than commit past the records of the lost commits, and its restart stores every event', { timeout: 120_000 }, async () => {
    const topics = await createTestTopics(1);
    const first = startIngestProcess(db.url, topics);
    const exited = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)));
    let again: ReturnType<typeof startIngestProcess> | undefined;
    try {
      await first.ready();
      await sendRecords(topics.events, records(0, 200));
      await waitCaughtUp(db.pool, topics);
      expect(await storedEvents()).toBe(200);

      // As a replica that was 100 records behind has it (here only the events and the
      // position go back; a real one takes the projections back with them).
      await db.pool.query(`DELETE FROM events WHERE source LIKE $1 AND split_part(source, ':', 4)::int >= 100`, [`kafka:${topics.events}:0:%`]);
      await db.pool.query('UPDATE consumer_offsets SET next_offset = 100 WHERE group_id = $1', [topics.groupId]);
      await sendRecords(topics.events, records(200, 250));

      // Before, it committed 250 as its position and went on, the records 100-199 lost for good.
      const code = await Promise.race([exited, new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 30_000))]);
      const log = fs.readFileSync(first.logFile, 'utf8');
      expect(code, log.slice(-3000)).not.toBe('running');
      expect(code).not.toBe(0);
      expect(log).toContain('Postgres lost committed positions');
      expect((await db.pool.query('SELECT next_offset::int AS n FROM consumer_offsets WHERE group_id = $1', [topics.groupId])).rows[0]?.n).toBe(100);

      again = startIngestProcess(db.url, topics);
      await again.ready();
      await waitCaughtUp(db.pool, topics);
      expect(await storedEvents()).toBe(250);
    } finally {
      await first.kill('SIGKILL');
      await again?.kill('SIGTERM');
    }
  });
});
