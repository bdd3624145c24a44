import { describe, expect, it } from 'vitest';
import { MicroBatcher, type SliceWork } from '../../src/ingest/batcher';
import { BatchSizing } from '../../src/ingest/sizing';
import { NO_ROWS } from '../../src/store/hot-path/event-rows';
import { originsOf } from '../../src/store/hot-path/record-origins';
import { waitFor } from '../helpers/wait';

function slice(partition: number, nextOffset: number, recordCount: number): SliceWork {
  return {
    slice: { rows: NO_ROWS, origins: originsOf([]), rejected: [], acceptedTimestamps: new Float64Array(0) },
    topic: 't',
    partition,
    nextOffset: BigInt(nextOffset),
    highWatermark: BigInt(nextOffset),
    recordCount,
    heartbeat: async () => undefined,
  };
}

/** A flush the test completes by hand, to hold a commit "in Postgres" as long as it likes. */
function manualFlush() {
  const calls: Array<{ works: SliceWork[]; finish: (err?: Error) => void }> = [];
  const flush = (works: SliceWork[]) =>
    new Promise<void>((resolve, reject) => calls.push({ works, finish: (err) => (err ? reject(err) : resolve()) }));
  return { calls, flush };
}

const fixed = (maxBatchEvents: number, lingerMs = 0) =>
  new BatchSizing({ mode: 'fixed', maxBatchEvents, lingerMs, freshnessTargetMs: 50 });
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('MicroBatcher', () => {
  it('buffers the next micro-batch while one commits, and no more than that', async () => {
    const { calls, flush } = manualFlush();
    const batcher = new MicroBatcher(fixed(10), flush);

    await batcher.add(slice(0, 10, 10)); // full: flushes at once
    expect(calls).toHaveLength(1);
    await batcher.add(slice(0, 20, 10)); // buffered behind the commit, add returns
    expect(batcher.pendingRecords).toBe(10);

    let thirdBuffered = false;
    const third = batcher.add(slice(0, 30, 10)).then(() => (thirdBuffered = true));
    await settle();
    expect(thirdBuffered).toBe(false); // a full batch already waits: backpressure

    calls[0]!.finish();
    await third;
    expect(calls).toHaveLength(2);
    expect(calls[1]!.works.map((w) => w.nextOffset)).toEqual([20n]);
    calls[1]!.finish();
    await settle();
    calls[2]!.finish();
    await batcher.drain();
    expect(calls.map((c) => c.works.map((w) => Number(w.nextOffset)))).toEqual([[10], [20], [30]]);
  });

  it('flushes one at a time, in the order slices came, whatever their partitions', async () => {
    let running = 0;
    let maxRunning = 0;
    const flushed: bigint[] = [];
    const batcher = new MicroBatcher(fixed(25), async (works) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await settle();
      flushed.push(...works.map((w) => w.nextOffset));
      running--;
    });
    for (let i = 1; i <= 20; i++) await batcher.add(slice(i % 3, i, 10));
    await batcher.drain();
    expect(maxRunning).toBe(1);
    expect(flushed).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i + 1)));
  });

  it('closes a small batch after the linger', async () => {
    const { calls, flush } = manualFlush();
    const batcher = new MicroBatcher(fixed(1000, 20), flush);
    await batcher.add(slice(0, 1, 1));
    expect(calls).toHaveLength(0);
    await waitFor('the linger to close the batch', () => calls.length === 1, { timeoutMs: 2000, intervalMs: 5 });
    expect(calls).toHaveLength(1);
    calls[0]!.finish();
    await batcher.drain();
  });

  it('after a failed flush, commits nothing later and refuses more, so no offset skips past lost records', async () => {
    const { calls, flush } = manualFlush();
    const batcher = new MicroBatcher(fixed(10), flush);
    await batcher.add(slice(0, 10, 10));
    await batcher.add(slice(0, 20, 10));
    calls[0]!.finish(new Error('Postgres gone'));
    await expect(batcher.drain()).rejects.toThrow('Postgres gone');
    await expect(batcher.add(slice(0, 30, 10))).rejects.toThrow('Postgres gone');
    expect(calls).toHaveLength(1);
  });
});
