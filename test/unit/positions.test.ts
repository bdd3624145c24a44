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
