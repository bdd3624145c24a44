/**
 * Postgres going back in time under a running `hunt ingest`: a failover to a replica that was
 * behind, or a restore to an earlier point. Its positions and its events go back together, but
 * the consumer fetches on from the positions it holds in memory, so its next commit stored a
 * position past the records of the lost commits (positions never move back), and they were
 * never read again; nothing noticed. Now it refuses to commit below what it loaded or
 * committed, a partition that takes no new record is checked by the monitor, and the process
 * stops; its restart reads those records again from the positions Postgres holds.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { floorsOnly, storeOffsets, StoredPositionsWentBack } from '../../src/store/hot-path/offsets';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { createTestTopics, sendRecords, startIngestProcess, waitCaughtUp, type TestTopics } from '../helpers/ingest';

const db = useTestDatabase();

const records = (hunt: string, from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => {
    const n = from + i;
    const event = clueFound({ eventId: `${hunt}-${n}`, huntId: hunt, playerId: `p${n % 7}`, clueId: `c${n}`, points: 1, occurredAt: new Date(Date.now() - 60_000 + n).toISOString() });
    return { key: event.huntId, value: JSON.stringify(event) };
  });

const storedEvents = async (hunt: string) => (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE hunt_id = $1', [hunt])).rows[0]?.n;
const storedPosition = async (topics: TestTopics) =>
  (await db.pool.query<{ n: number }>('SELECT next_offset::int AS n FROM consumer_offsets WHERE group_id = $1', [topics.groupId])).rows[0]?.n;

/** As a replica that was behind from offset `from` on has it (only the events and the position go back here; a real one takes the projections back too). */
async function goBack(topics: TestTopics, from: number): Promise<void> {
  await db.pool.query(`DELETE FROM events WHERE source LIKE $1 AND split_part(source, ':', 4)::int >= $2`, [`kafka:${topics.events}:0:%`, from]);
  await db.pool.query('UPDATE consumer_offsets SET next_offset = $2 WHERE group_id = $1', [topics.groupId, from]);
}

/** Starts ingest, lets it apply `count` records, takes Postgres back to `backTo`, then calls `after`; returns how the process ended. */
async function wentBack(hunt: string, after: (topics: TestTopics) => Promise<void>): Promise<{ topics: TestTopics; code: number | null | 'running'; log: string }> {
  const topics = await createTestTopics(1);
  const first = startIngestProcess(db.url, topics);
  const exited = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)));
  try {
    await first.ready();
    await sendRecords(topics.events, records(hunt, 0, 200));
    await waitCaughtUp(db.pool, topics);
    expect(await storedEvents(hunt)).toBe(200);
    await goBack(topics, 100);
    await after(topics);
    const code = await Promise.race([exited, new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 30_000))]);
    return { topics, code, log: fs.readFileSync(first.logFile, 'utf8') };
  } finally {
    await first.kill('SIGKILL');
  }
}

async function restartStoresEverything(hunt: string, topics: TestTopics, produced: number): Promise<void> {
  const again = startIngestProcess(db.url, topics);
  try {
    await again.ready();
    await waitCaughtUp(db.pool, topics);
    expect(await storedEvents(hunt)).toBe(produced);
  } finally {
    await again.kill('SIGTERM');
  }
}

describe('hunt ingest when Postgres goes back in time', () => {
  it('stops rather than commit past the records of the lost commits, and its restart stores every event', { timeout: 120_000 }, async () => {
    const { topics, code, log } = await wentBack('h-busy', (t) => sendRecords(t.events, records('h-busy', 200, 250)));
    // Before, it committed 250 as its position and went on, the records 100-199 lost for good.
    expect(code, log.slice(-3000)).not.toBe('running');
    expect(code).not.toBe(0);
    expect(log).toContain('Postgres lost committed positions');
    expect(await storedPosition(topics)).toBe(100);
    await restartStoresEverything('h-busy', topics, 250);
  });

  it('finds it on a partition that takes no new record, and stops', { timeout: 120_000 }, async () => {
    // No commit would ever find it there: the events stayed missing.
    const { topics, code, log } = await wentBack('h-idle', async () => undefined);
    expect(code, log.slice(-3000)).not.toBe('running');
    expect(code).not.toBe(0);
    expect(log).toContain('Postgres lost committed positions');
    await restartStoresEverything('h-idle', topics, 200);
  });
});

describe('storeOffsets with a floor', () => {
  it('writes nothing and says which partition, when Postgres holds less than the floor', async () => {
    const position = (partition: number) => ({ topic: 'floor-topic', partition, nextOffset: 500n });
    await withTransaction(db.pool, (c) => storeOffsets(c, 'floor-group', [position(0), position(1)]));
    await db.pool.query(`UPDATE consumer_offsets SET next_offset = 300 WHERE group_id = 'floor-group' AND partition = 1`);
    const refused = withTransaction(db.pool, (c) => storeOffsets(c, 'floor-group', [{ ...position(0), nextOffset: 600n, floor: 500n }, { ...position(1), nextOffset: 600n, floor: 500n }]));
    await expect(refused).rejects.toBeInstanceOf(StoredPositionsWentBack);
    await expect(refused).rejects.toMatchObject({ partitions: [{ topic: 'floor-topic', partition: 1, stored: 300n, floor: 500n }] });
    const { rows } = await db.pool.query(`SELECT partition, next_offset::int AS n FROM consumer_offsets WHERE group_id = 'floor-group' ORDER BY partition`);
    expect(rows).toEqual([{ partition: 0, n: 500 }, { partition: 1, n: 300 }]);
    // At or above the floor, and without one, it moves on as before.
    await withTransaction(db.pool, (c) => storeOffsets(c, 'floor-group', [{ ...position(0), nextOffset: 600n, floor: 500n }, { ...position(1), nextOffset: 600n }]));
    expect((await db.pool.query(`SELECT next_offset::int AS n FROM consumer_offsets WHERE group_id = 'floor-group' ORDER BY partition`)).rows).toEqual([{ n: 600 }, { n: 600 }]);
  });

  it('checks the floors and moves nothing for a part of a micro-batch that does not store its offsets (floorsOnly)', async () => {
    const positions = (nextOffset: bigint, floor?: bigint) => [0, 1].map((partition) => ({ topic: 'part-topic', partition, nextOffset, floor }));
    await withTransaction(db.pool, (c) => storeOffsets(c, 'part-group', positions(500n)));
    const stored = async () => (await db.pool.query(`SELECT next_offset::int AS n FROM consumer_offsets WHERE group_id = 'part-group' ORDER BY partition`)).rows;
    // Floors met: nothing moves (the batch's own positions, 900, wait for its last part).
    await withTransaction(db.pool, (c) => storeOffsets(c, 'part-group', floorsOnly(positions(900n, 500n))));
    expect(await stored()).toEqual([{ n: 500 }, { n: 500 }]);
    // Postgres lost commits: refused, as the whole batch's commit would be.
    await db.pool.query(`UPDATE consumer_offsets SET next_offset = 300 WHERE group_id = 'part-group' AND partition = 1`);
    await expect(withTransaction(db.pool, (c) => storeOffsets(c, 'part-group', floorsOnly(positions(900n, 500n))))).rejects.toMatchObject({
      partitions: [{ topic: 'part-topic', partition: 1, stored: 300n, floor: 500n }],
    });
    // No floor, nothing to check: no position is written.
    expect(floorsOnly(positions(900n))).toEqual([]);
    expect(await stored()).toEqual([{ n: 500 }, { n: 300 }]);
  });
});
