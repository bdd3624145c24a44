import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { PartitionPositions } from '../../src/ingest/positions';

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
  /** Position 20 stored for partition 0, the log holding [low, high). */
  async function joined(low: bigint, high: bigint, startedThere = false) {
    // Stored: position 20; `startedThere`: set at start-up, nothing read since (start_offset = next_offset).
    const pool = {
      query: async (sql: string) => ({ rows: /start_offset/.test(sql) ? (startedThere ? [{ partition: 0 }] : []) : [{ partition: 0, next_offset: '20' }] }),
    } as unknown as pg.Pool;
    const positions = new PartitionPositions({ pool, groupId: 'g', topic: 't', startFrom: 'earliest', watermarks: async () => new Map([[0, { low, high }]]) });
    await positions.reload();
    return positions;
  }

  it('seeks to the record before the position and asks to check it when the fetch starts there', async () => {
    const positions = await joined(0n, 100n);
    expect(await positions.joinOffset(0)).toBe(19n);
    expect(await positions.check(0, 19n)).toEqual({ action: 'verify', offset: 19n, position: 20n, logStart: 0n });
    positions.verified(0);
    expect(await positions.check(0, 20n)).toEqual({ action: 'take' });
  });

  it('seeks back once when a fetch starts elsewhere (the seek raced the committed offset), then takes the position (a marker kafkajs steps over)', async () => {
    const positions = await joined(0n, 100n);
    await positions.joinOffset(0);
    expect(await positions.check(0, 20n)).toEqual({ action: 'seek', offset: 19n });
    expect(await positions.check(0, 20n)).toEqual({ action: 'take' });
  });

  it('checks nothing when retention took the record before the position', async () => {
    const positions = await joined(20n, 100n);
    await positions.joinOffset(0);
    expect(await positions.check(0, 20n)).toEqual({ action: 'take' });
  });

  it('checks nothing at a position the partition only started from (nothing before it was applied)', async () => {
    const positions = await joined(0n, 100n, true);
    expect(await positions.joinOffset(0)).toBe(20n);
    expect(await positions.check(0, 20n)).toEqual({ action: 'take' });
  });

  it('still reports a log that ends before the position as a reset', async () => {
    const positions = await joined(0n, 5n);
    await positions.joinOffset(0);
    expect(await positions.check(0, 0n)).toEqual({ action: 'reset', position: 20n, logStart: 0n, logEnd: 5n });
  });
});
