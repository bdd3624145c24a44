/**
 * A retention gap on a partition whose lane still holds slices read before it: the skip goes
 * to Postgres through that lane, after them, never in a transaction of its own ahead of them
 * (which a crash before their commit turned into a loss of records nobody read).
 */
import { describe, expect, it } from 'vitest';
import type { Consumer } from 'kafkajs';
import type { MicroBatcher, SliceWork } from '../../src/ingest/batcher';
import type { IngestHealth } from '../../src/ingest/health';
import { createIngestMetrics } from '../../src/ingest/metrics';
import type { PartitionPositions } from '../../src/ingest/positions';
import { retentionGapHandler } from '../../src/ingest/retention-gap';
import { createLogger } from '../../src/log';

describe('retentionGapHandler, continuing from the log start', () => {
  it('moves the position at once and stores the skip through the partition lane, behind what it holds', async () => {
    const lane: SliceWork[] = [];
    const skips: bigint[] = [];
    const handler = retentionGapHandler({
      topic: 't',
      policy: 'continue',
      consumer: {} as Consumer,
      positions: { skipTo: (_: number, offset: bigint) => void skips.push(offset) } as unknown as PartitionPositions,
      laneOf: () => ({ add: async (work: SliceWork) => lane.push(work) > 0 }) as unknown as MicroBatcher,
      health: {} as IngestHealth,
      metrics: createIngestMetrics(),
      logger: createLogger({ logLevel: 'fatal' }),
    });
    expect(await handler(0, 100n, 150n)).toBe(true);
    expect(skips).toEqual([150n]);
    expect(lane.map((w) => ({ partition: w.partition, nextOffset: w.nextOffset, records: w.recordCount }))).toEqual([{ partition: 0, nextOffset: 150n, records: 0 }]);
  });
});
