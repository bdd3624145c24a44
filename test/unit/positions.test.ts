import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { PartitionPositions, PositionsLoading } from '../../src/ingest/positions';
import { rowsOf } from '../../src/store/hot-path/event-rows';
import { atSecond, clueFound } from '../helpers/event-builders';

/** Positions held in memory only: passFiltered and advance never reach Postgres or Kafka. */
function positionsAt(partition: number, offset: bigint): PartitionPositions {
  const unreachable = () => Promise.reject(new Error('not reached in this test'));
  const positions = new PartitionPositions({ pool: {} as pg.Pool, groupId: 'g', topic: 't', startFrom: 'earliest', watermarks: unreachable });
  positions.advance(partition, offset);
  return positions;
}

describe('PartitionPositions.passFiltered (records kafkajs stepped over)', () => {
  it('moves past filtered records that start at the position', () => {
    const positions = positionsAt(0, 10n);
    expect(positions.passFiltered(0, 10n, 10n)).toEqual({ from: 10n, to: 11n }); // a commit marker at the position
    expect(positions.passFiltered(0, 11n, 450n)).toEqual({ from: 11n, to: 451n }); // an aborted transaction after it
  });

  it('moves past filtered records that cover the position from before it', () => {
    expect(positionsAt(0, 10n).passFiltered(0, 5n, 20n)).toEqual({ from: 10n, to: 21n });
  });

  it('ignores filtered records past the position: the records in between are not seen yet', () => {
    const positions = positionsAt(0, 10n);
    expect(positions.passFiltered(0, 12n, 20n)).toBeUndefined();
    expect(positions.passFiltered(0, 11n, 11n)).toBeUndefined();
  });

  it('ignores filtered records already behind the position, and partitions it does not know', () => {
    const positions = positionsAt(0, 10n);
    expect(positions.passFiltered(0, 3n, 9n)).toBeUndefined();
    expect(positions.passFiltered(1, 0n, 5n)).toBeUndefined();
  });
});

describe('PartitionPositions after a join (the record before the position checked first)', () => {
  /** Position 20 stored for partition 0, the log holding [low, high); resolves the positions and where partition 0 was sought. */
  async function joined(low: bigint, high: bigint, startedThere = false) {
    // Stored: position 20; `startedThere`: set at start-up, nothing read since (start_offset = next_offset).
    const pool = {
      query: async () => ({ rows: [{ partition: 0, next_offset: '20', unread: startedThere }] }),
    } as unknown as pg.Pool;
    const marks = { low, high }; // the log's, as the watermarks read them now
    const positions = new PartitionPositions({ pool, groupId: 'g', topic: 't', startFrom: 'earliest', watermarks: async () => new Map([[0, { ...marks }]]) });
    let soughtTo: bigint | undefined;
    await positions.resume([0], { commitBuffered: async () => undefined, seek: (_, offset) => (soughtTo = offset) });
    return { positions, soughtTo, marks };
  }

  it('seeks to the record before the position and asks to check it when the fetch starts there', async () => {
    const { positions, soughtTo } = await joined(0n, 100n);
    expect(soughtTo).toBe(19n);
    expect(await positions.check(0, 19n)).toEqual({ action: 'verify', offset: 19n, position: 20n, logStart: 0n });
    positions.verified(0);
    expect(await positions.check(0, 20n)).toEqual({ action: 'take' });
  });

  it('seeks back once when a fetch starts elsewhere (the seek raced the committed offset), then takes the position (a marker kafkajs steps over)', async () => {
    const { positions } = await joined(0n, 100n);
    expect(await positions.check(0, 20n)).toEqual({ action: 'seek', offset: 19n });
    expect(await positions.check(0, 20n)).toEqual({ action: 'take' });
  });

  it('checks nothing when retention took the record before the position', async () => {
    const { positions } = await joined(20n, 100n);
    expect(await positions.check(0, 20n)).toEqual({ action: 'take' });
  });

  it('checks nothing at a position the partition only started from (nothing before it was applied)', async () => {
    const { positions, soughtTo } = await joined(0n, 100n, true);
    expect(soughtTo).toBe(20n);
    expect(await positions.check(0, 20n)).toEqual({ action: 'take' });
  });

  it('still reports a log that ends before the position as a reset', async () => {
    const { positions } = await joined(0n, 5n);
    expect(await positions.check(0, 0n)).toEqual({ action: 'reset', position: 20n, logStart: 0n, logEnd: 5n });
  });

  it('once a reset is done, reads the new log from its start, with no check of the old position left to seek to', async () => {
    const { positions, marks } = await joined(0n, 5n);
    expect(await positions.check(0, 0n)).toMatchObject({ action: 'reset' });
    positions.readAgainFrom(0, 0n); // log-reset.ts, once the rewind committed
    marks.high = 100n; // the new log grows past the old position
    // Before, the join's check of offset 19 was still armed: a seek there, and the records from
    // the log start to 19 never read.
    expect(await positions.check(0, 0n)).toEqual({ action: 'take' });
  });

  it('tries a reset again as it was decided when its rewind failed, even once the new log has grown past the old position', async () => {
    const { positions, marks } = await joined(0n, 5n);
    const reset = { action: 'reset', position: 20n, logStart: 0n, logEnd: 5n };
    expect(await positions.check(0, 0n)).toEqual(reset);
    // The rewind in Postgres failed; during the retry's wait producers write past offset 20.
    marks.high = 100n;
    // Decided anew, the log would look whole: a seek to the old position, the new log's records
    // below it never read.
    expect(await positions.check(0, 0n)).toEqual(reset);
    positions.readAgainFrom(0, 0n);
    expect(await positions.check(0, 0n)).toEqual({ action: 'take' });
  });
});

/**
 * consumer_offsets in memory, for one group and topic. Each read answers with the rows as
 * they were when it was sent; the first (a join's) only once `open` is called.
 */
function offsetsTable() {
  const rows = new Map<number, { next: bigint; start?: bigint }>();
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  let slowReads = 1;
  const client = {
    query: async (sql: string, values: unknown[] = []) => {
      if (/^(BEGIN|COMMIT|ROLLBACK)$/.test(sql)) return { rows: [] };
      if (/^\s*INSERT INTO consumer_offsets/.test(sql)) {
        const [, , partition, offset] = values as [string, string, number, string];
        const known = rows.get(partition);
        if (!known) rows.set(partition, { next: BigInt(offset), start: BigInt(offset) });
        else if (known.next < BigInt(offset)) known.next = BigInt(offset);
        return { rows: [] };
      }
      const snapshot = [...rows].map(([partition, row]) => ({ partition, next_offset: row.next.toString(), unread: row.next === row.start }));
      if (slowReads > 0) {
        slowReads--;
        await opened;
      }
      return { rows: snapshot };
    },
    release: () => undefined,
  };
  const pool = { ...client, connect: async () => client } as unknown as pg.Pool;
  return {
    pool,
    rows,
    open,
  };
}

describe('PartitionPositions while a join loads the positions', () => {
  it('refuses fetches until the positions are loaded, so the record checked is one Postgres holds, not one still buffered', async () => {
    // A group new to the topic: Postgres holds nothing, and the join's reads are slow to come back.
    const table = offsetsTable();
    const positions = new PartitionPositions({ pool: table.pool, groupId: 'g', topic: 't', startFrom: 'earliest', watermarks: async () => new Map([[0, { low: 0n, high: 5000n }]]) });
    const sought: bigint[] = [];
    const resumed = positions.resume([0], { commitBuffered: async () => undefined, seek: (_, offset) => sought.push(offset) });
    // The first fetch arrives while the join's reads are on their way: refused, for its
    // handler to try again (heartbeating meanwhile).
    await expect(positions.check(0, 0n)).rejects.toBeInstanceOf(PositionsLoading);

    table.open();
    await resumed;
    expect(await positions.check(0, 0n)).toEqual({ action: 'take' });
    expect(sought).toEqual([0n]);
    // Its records are buffered, not committed: a later fetch goes on from there, nothing to check.
    positions.advance(0, 1250n);
    expect(await positions.check(0, 1250n)).toEqual({ action: 'take' });
  });

  it('checks the record before the position Postgres holds, even when a fetch in flight moved the position on meanwhile', async () => {
    const table = offsetsTable();
    table.rows.set(1, { next: 1000n }); // partition 0: nothing stored yet
    table.open();
    const sought = new Map<number, bigint>();
    const positions: PartitionPositions = new PartitionPositions({
      pool: table.pool,
      groupId: 'g',
      topic: 't',
      startFrom: 'earliest',
      watermarks: async (partitions = [0, 1]) => {
        // While partition 0's start is looked up, a slice of partition 1 from a fetch before the join is buffered.
        positions.advance(1, 1250n);
        return new Map(partitions.map((p) => [p, { low: 0n, high: 5000n }]));
      },
    });
    await positions.resume([0, 1], { commitBuffered: async () => undefined, seek: (partition, offset) => void sought.set(partition, offset) });
    expect(sought).toEqual(new Map([[0, 0n], [1, 999n]]));
    expect(await positions.check(1, 999n)).toMatchObject({ action: 'verify', offset: 999n });
  });

  it('commits what the lanes buffered before it loads the positions, so the member does not read its own buffer again', async () => {
    const table = offsetsTable();
    table.rows.set(0, { next: 1000n });
    table.open();
    const positions = new PartitionPositions({ pool: table.pool, groupId: 'g', topic: 't', startFrom: 'earliest', watermarks: async () => new Map() });
    const sought: bigint[] = [];
    const commitBuffered = async () => void table.rows.set(0, { next: 1250n }); // the lane's commit of 1000-1249
    await positions.resume([0], { commitBuffered, seek: (_, offset) => void sought.push(offset) });
    expect(sought).toEqual([1249n]);
  });
});

describe('PartitionPositions with INGEST_START_FROM=latest', () => {
  const allAt = (high: bigint) => async (partitions = [0, 1, 2, 3]) => new Map(partitions.map((p) => [p, { low: 0n, high }]));

  it('starts a group new to the topic at the end of every partition, whichever member joins first', async () => {
    const table = offsetsTable();
    table.open();
    const first = new PartitionPositions({ pool: table.pool, groupId: 'g', topic: 't', startFrom: 'latest', watermarks: allAt(1000n) });
    const sought = new Map<number, bigint>();
    const hooks = { commitBuffered: async () => undefined, seek: (partition: number, offset: bigint) => void sought.set(partition, offset) };
    await first.resume([0, 1], hooks);
    // A second member joins a moment later, more records written meanwhile.
    const second = new PartitionPositions({ pool: table.pool, groupId: 'g', topic: 't', startFrom: 'latest', watermarks: allAt(1100n) });
    await second.resume([2, 3], hooks);
    expect(sought).toEqual(new Map([[0, 1000n], [1, 1000n], [2, 1000n], [3, 1000n]]));
    expect([...table.rows.values()]).toEqual(Array(4).fill({ next: 1000n, start: 1000n }));
  });

  it('starts a partition added to the topic later at its log start', async () => {
    const table = offsetsTable();
    for (const partition of [0, 1]) table.rows.set(partition, { next: 1500n, start: 1000n });
    table.open();
    const positions = new PartitionPositions({ pool: table.pool, groupId: 'g', topic: 't', startFrom: 'latest', watermarks: allAt(800n) });
    const sought = new Map<number, bigint>();
    await positions.resume([0, 1, 2], { commitBuffered: async () => undefined, seek: (partition, offset) => void sought.set(partition, offset) });
    expect(sought).toEqual(new Map([[0, 1499n], [1, 1499n], [2, 0n]]));
  });
});

describe('PartitionPositions after a join, with Postgres failing', () => {
  it('loads the positions again until they load, refusing fetches meanwhile, then checks the record before the position', async () => {
    let queries = 0;
    const pool = {
      query: async () => {
        if (++queries <= 2) throw new Error('Connection terminated unexpectedly');
        return { rows: [{ partition: 0, next_offset: '20', unread: false }] };
      },
    } as unknown as pg.Pool;
    const positions = new PartitionPositions({ pool, groupId: 'g', topic: 't', startFrom: 'earliest', watermarks: async () => new Map([[0, { low: 0n, high: 100n }]]) });
    const retries: number[] = [];
    const resumed = positions.resume([0], { commitBuffered: async () => undefined, seek: () => undefined, onRetry: (_, delayMs) => retries.push(delayMs) });
    await expect(positions.check(0, 20n)).rejects.toBeInstanceOf(PositionsLoading);
    await resumed;
    expect(retries).toEqual([250, 500]);
    expect(await positions.check(0, 19n)).toEqual({ action: 'verify', offset: 19n, position: 20n, logStart: 0n });
  });

  it('arms the check of a partition with a position before starting one without, so a failure there leaves no partition unchecked', async () => {
    // Partition 0 has a position; partition 1 (assigned first) has none, and its start needs the watermarks, which fail once.
    const pool = { query: async () => ({ rows: [{ partition: 0, next_offset: '20', unread: false }] }) } as unknown as pg.Pool;
    let watermarkCalls = 0;
    const watermarks = async () => {
      if (++watermarkCalls === 1) throw new Error('There is no leader for this topic-partition');
      return new Map([[0, { low: 0n, high: 100n }], [1, { low: 0n, high: 100n }]]);
    };
    const positions = new PartitionPositions({ pool, groupId: 'g', topic: 't', startFrom: 'earliest', watermarks });
    const sought: string[] = [];
    await positions
      .resume([1, 0], { commitBuffered: async () => undefined, seek: (p, o) => sought.push(`${p}@${o}`), isStopping: () => true })
      .catch(() => undefined);
    // Stopping: not tried again. Partition 0 was sought to its check all the same.
    expect(sought).toEqual(['0@19']);
    expect(await positions.check(0, 19n)).toEqual({ action: 'verify', offset: 19n, position: 20n, logStart: 0n });
  });
});

describe('PartitionPositions and what the lanes remember of their commits (known-events.ts)', () => {
  const rowsWithIds = (ids: readonly string[]) => rowsOf(ids.map((eventId, i) => ({ event: clueFound({ eventId, occurredAt: atSecond(i) }), source: 'test' })));

  /** Positions whose stored position (20 for partition 0) is answered when `answer` is called. */
  function withSlowLoad() {
    const waiting: (() => void)[] = [];
    const pool = {
      query: () => new Promise((resolve) => waiting.push(() => resolve({ rows: [{ partition: 0, next_offset: '20', unread: false }] }))),
    } as unknown as pg.Pool;
    const positions = new PartitionPositions({ pool, groupId: 'g', topic: 't', startFrom: 'earliest', watermarks: async () => new Map([[0, { low: 0n, high: 100n }]]) });
    const join = () => positions.resume([0], { commitBuffered: async () => undefined, seek: () => undefined });
    /** Resolves once the load's query is asked (and not yet answered). */
    const asked = async () => {
      while (waiting.length === 0) await new Promise((resolve) => setImmediate(resolve));
    };
    /** Answers the load's query once it is asked. */
    const answer = async () => {
      await asked();
      waiting.shift()?.();
    };
    return { positions, join, asked, answer };
  }

  it('forgets them when a join loads the floors again, even those committed while it loaded', async () => {
    const { positions, join, asked, answer } = withSlowLoad();
    const first = join();
    await answer();
    await first;
    positions.committedEvents.remember(rowsWithIds(['before']), [], () => 0);
    positions.noteStored(0, 25n);
    // A commit lands while the next join's load is under way: its floor is raised, then the
    // load sets it back to what Postgres answered; the memory of that commit must go with it.
    const second = join();
    await asked();
    positions.committedEvents.remember(rowsWithIds(['during']), [], () => 0);
    positions.noteStored(0, 30n);
    await answer();
    await second;
    expect(positions.floorOf(0)).toBe(20n);
    expect(positions.committedEvents.has('before', 0)).toBe(false);
    expect(positions.committedEvents.has('during', 0)).toBe(false);
  });

  it('checks stored positions against the floors taken before they were read, and a floor lowered meanwhile (a log reset) at its new value', async () => {
    const { positions, join, answer } = withSlowLoad();
    const joined = join();
    await answer();
    await joined;
    positions.noteStored(0, 30n);
    // A log reset while the monitor reads: the floor and the stored position go back together.
    const duringReset = positions.floorCheck([0]);
    positions.lowerFloor(0, 5n);
    expect(duringReset(new Map([[0, 5n]]))).toEqual([]);
    // A commit while it reads: the floor rises past what was read, which is no loss.
    const duringCommit = positions.floorCheck([0]);
    positions.noteStored(0, 50n);
    expect(duringCommit(new Map([[0, 40n]]))).toEqual([]);
    // Postgres holding less than was committed, or nothing: lost commits.
    const lost = positions.floorCheck([0]);
    expect(lost(new Map([[0, 45n]]))).toEqual([{ partition: 0, stored: 45n, floor: 50n }]);
    expect(lost(new Map())).toEqual([{ partition: 0, stored: undefined, floor: 50n }]);
    // A partition without a floor (not held) is not checked.
    expect(positions.floorCheck([1])(new Map([[1, 0n]]))).toEqual([]);
  });

  it('checks no floor while a join loads the positions: a partition newly assigned may carry the floor of an earlier join, from before another member moved it back', async () => {
    const { positions, join, asked, answer } = withSlowLoad();
    const first = join();
    await answer();
    await first;
    positions.noteStored(0, 50n); // a floor from this member's earlier ownership
    // Another member owned partition 0 meanwhile and read its replaced log again from 0: the
    // stored position is 0 now. A join gives it back to this member; while its positions load,
    // the monitor checks the partitions assigned.
    const second = join();
    await asked();
    expect(positions.floorCheck([0])(new Map([[0, 0n]]))).toEqual([]);
    const startedBefore = positions.floorCheck([0]); // a check under way when the load ends
    await answer(); // Postgres answers 20 for it
    await second;
    expect(startedBefore(new Map([[0, 20n]]))).toEqual([]);
    // Loaded: the floors are Postgres's again, and a loss below them shows.
    expect(positions.floorCheck([0])(new Map([[0, 20n]]))).toEqual([]);
    expect(positions.floorCheck([0])(new Map([[0, 10n]]))).toEqual([{ partition: 0, stored: 10n, floor: 20n }]);
  });

  it('forgets them when a floor is lowered (a log reset), not when one rises', async () => {
    const { positions, join, answer } = withSlowLoad();
    const joined = join();
    await answer();
    await joined;
    positions.committedEvents.remember(rowsWithIds(['a']), [], () => 0);
    positions.noteStored(0, 30n);
    positions.lowerFloor(0, 40n); // above the floor: nothing lowered
    expect(positions.committedEvents.has('a', 0)).toBe(true);
    positions.lowerFloor(0, 5n);
    expect(positions.committedEvents.has('a', 0)).toBe(false);
  });
});

describe('PartitionPositions: the hold for a rejoin', () => {
  it('says how long since the rejoin was last handed to kafkajs, not since the hold (the lanes commit in between)', () => {
    const positions = positionsAt(0, 5n);
    positions.rejoinHandedOver(500); // not held: nothing to hand over
    expect(positions.sinceRejoinHandedOver(1_000)).toBe(0);
    positions.holdForRejoin();
    expect(positions.sinceRejoinHandedOver(2_000)).toBe(0); // held, still committing
    positions.rejoinHandedOver(16_000);
    positions.rejoinHandedOver(17_000); // a second partition's hand-over: kafkajs waited for it
    expect(positions.sinceRejoinHandedOver(22_000)).toBe(5_000);
  });
});
