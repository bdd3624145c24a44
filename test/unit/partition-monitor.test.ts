/**
 * The partition monitor's check of the stored positions against what this process committed:
 * positions a standby served (a failover under way, routing that lags one) may lag the
 * primary without anything being lost, and the process stopped as if Postgres had lost its
 * commits, again at every flip of the routing.
 */
import { describe, expect, it } from 'vitest';
import { IngestHealth } from '../../src/ingest/health';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { startPartitionMonitor } from '../../src/ingest/monitor';
import { createLogger } from '../../src/log';

function monitorServing(fromStandby: boolean) {
  const health = new IngestHealth({ stallLimitMs: 30_000, lanes: [], partitionsOfLane: () => [], metrics: createIngestMetrics() });
  const checked: Map<number, bigint>[] = [];
  const monitor = startPartitionMonitor({
    health,
    topic: 't',
    intervalMs: 60_000,
    watermarks: async () => new Map([[0, { low: 0n, high: 1000n }]]),
    storedOffsets: async () => ({ offsets: new Map([[0, 980n]]), fromStandby }),
    positionFloors: () => ({ check: (stored) => void checked.push(stored) }),
    onIdleGap: async () => undefined,
    logger: createLogger({ logLevel: 'fatal' }),
  });
  return { monitor, checked };
}

describe('the partition monitor', () => {
  it('checks the positions the primary serves against the floors, and not those a standby serves', async () => {
    const primary = monitorServing(false);
    await primary.monitor.tick();
    primary.monitor.stop();
    expect(primary.checked).toEqual([new Map([[0, 980n]])]);

    const standby = monitorServing(true);
    await standby.monitor.tick();
    standby.monitor.stop();
    expect(standby.checked).toEqual([]);
  });
});
