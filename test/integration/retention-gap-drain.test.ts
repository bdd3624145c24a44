/**
 * A retention gap met while the partition's lane still buffers records read before it, on
 * the real Postgres: the lane commits them before the position is stored past the gap.
 * Before, the position went past them at once, and a crash before their commit lost them
 * without a count (retention had deleted them from the log too).
 */
import type { Consumer } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import type { IngestHealth } from '../../src/ingest/health';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { PartitionPositions } from '../../src/ingest/positions';
import { retentionGapHandler } from '../../src/ingest/retention-gap';
import { createLogger } from '../../src/log';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();
const groupId = 'retention-gap-drain';
const topic = 'hunt.events.gap';

const storedPosition = async () =>
  (await db.pool.query<{ next_offset: number }>('SELECT next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2 AND partition = 0', [groupId, topic])).rows[0]?.next_offset;

describe('a retention gap', () => {
  it('stores the position past it only once the lane has committed what it buffered before it', async () => {
    const positions = new PartitionPositions({ pool: db.pool, groupId, topic, startFrom: 'earliest', watermarks: async () => new Map() });
    const drains: (() => void)[] = [];
    const onGap = retentionGapHandler({
      pool: db.pool,
      groupId,
      topic,
      policy: 'continue',
      consumer: {} as Consumer,
      positions,
      laneOf: () => ({ drain: () => new Promise<void>((resolve) => void drains.push(resolve)) }),
      health: {} as IngestHealth,
      metrics: createIngestMetrics(),
      logger: createLogger({ logLevel: 'silent' }),
    });
    const handled = onGap(0, 100n, 150n);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(drains).toHaveLength(1);
    expect(await storedPosition()).toBeUndefined(); // the lane's records are not committed yet
    drains[0]!();
    expect(await handled).toBe(true);
    expect(await storedPosition()).toBe(150);
  });
});
