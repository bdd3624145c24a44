/**
 * The log reset's handler on real positions: once the stored position is moved back, the
 * partition is read from the new log's start, with nothing of the join's check left to seek
 * to (a seek to the old position took the new log from there, its first records never read).
 */
import { describe, expect, it } from 'vitest';
import type { Consumer } from 'kafkajs';
import type pg from 'pg';
import type { MicroBatcher } from '../../src/ingest/batcher';
import { logResetHandler } from '../../src/ingest/log-reset';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { PartitionPositions } from '../../src/ingest/positions';
import { createLogger } from '../../src/log';

describe('logResetHandler', () => {
  it('leaves the partition reading the new log from its start, with no check of the old position left', async () => {
    const statements: string[] = [];
    const client = { query: async (sql: string) => (statements.push(sql.trim().split(/\s+/)[0]!), { rows: [], rowCount: 1 }), release: () => undefined };
    // Position 20 stored for partition 0 at the join; the log now ends at 5 (recreated).
    const pool = { query: async () => ({ rows: [{ partition: 0, next_offset: '20', unread: false }] }), connect: async () => client } as unknown as pg.Pool;
    const marks = { low: 0n, high: 5n };
    const positions = new PartitionPositions({ pool, groupId: 'g', topic: 't', startFrom: 'earliest', watermarks: async () => new Map([[0, { ...marks }]]) });
    const sought: bigint[] = [];
    const rewound: [number, bigint][] = [];
    await positions.resume([0], { commitBuffered: async () => undefined, seek: (_, offset) => void sought.push(offset) });
    expect(sought).toEqual([19n]); // the join's check of the record before the position

    const reset = await positions.check(0, 0n);
    expect(reset).toEqual({ action: 'reset', position: 20n, logStart: 0n, logEnd: 5n });
    if (reset.action !== 'reset') return;
    const handle = logResetHandler({
      pool,
      groupId: 'g',
      topic: 't',
      consumer: { seek: ({ offset }: { offset: string }) => void sought.push(BigInt(offset)) } as unknown as Consumer,
      positions,
      laneOf: () => ({ settled: async () => undefined }) as unknown as MicroBatcher,
      metrics: createIngestMetrics(),
      logger: createLogger({ logLevel: 'fatal' }),
      onRewound: (partition, offset) => void rewound.push([partition, offset]),
    });
    await handle({ partition: 0, ...reset });
    expect(statements).toEqual(['BEGIN', 'UPDATE', 'COMMIT']);
    expect(rewound).toEqual([[0, 0n]]); // Kafka's trailing commits follow the position down
    expect(sought.at(-1)).toBe(0n);
    marks.high = 100n; // the new log grows past the old position
    expect(await positions.check(0, 0n)).toEqual({ action: 'take' });
  });
});
