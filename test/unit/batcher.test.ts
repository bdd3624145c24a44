import { describe, expect, it, vi } from 'vitest';
import { MicroBatcher, type SliceWork } from '../../src/ingest/batcher';
import { BatchSizing } from '../../src/ingest/sizing';
import { NO_ROWS } from '../../src/store/hot-path/event-rows';
import { originsOf } from '../../src/store/hot-path/record-origins';
import { waitFor } from '../helpers/wait';

function slice(partition: number, nextOffset: number, recordCount: number, byteCount = recordCount * 300): SliceWork {
  return {
    slice: { rows: NO_ROWS, origins: originsOf([]), rejected: [], acceptedTimestamps: new Float64Array(0) },
    topic: 't',
    partition,
    nextOffset: BigInt(nextOffset),
    highWatermark: BigInt(nextOffset),
    recordCount,
    byteCount,
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

  it('stops waiting for room when told (the member is to rejoin), without buffering the slice, and leaves no listener behind', async () => {
    const { calls, flush } = manualFlush();
    const batcher = new MicroBatcher(fixed(10), flush);
    const rejoin = new AbortController();
    const listeners = vi.spyOn(rejoin.signal, 'addEventListener');
    const removed = vi.spyOn(rejoin.signal, 'removeEventListener');
    expect(await batcher.add(slice(0, 10, 10), rejoin.signal)).toBe(true); // flushing
    expect(await batcher.add(slice(0, 20, 10), rejoin.signal)).toBe(true); // buffered behind it
    // Waits for room, woken by the commit: its listener goes with it.
    const woken = batcher.add(slice(0, 30, 10), rejoin.signal);
    await settle();
    calls[0]!.finish();
    expect(await woken).toBe(true);
    expect(removed).toHaveBeenCalledTimes(listeners.mock.calls.length);
    // Waits again, and the member is to rejoin: not buffered.
    const left = batcher.add(slice(0, 40, 10), rejoin.signal);
    await settle();
    rejoin.abort();
    expect(await left).toBe(false);
    expect(await batcher.add(slice(0, 50, 10), rejoin.signal)).toBe(false); // aborted already, still full
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

  it('closes a micro-batch at its byte budget, and holds back while one full by bytes waits', async () => {
    const { calls, flush } = manualFlush();
    const offsetsOf = (call: { works: SliceWork[] } | undefined) => call?.works.map((w) => Number(w.nextOffset));
    const batcher = new MicroBatcher(fixed(5000, 1000), flush, 1000);
    await batcher.add(slice(0, 1, 1, 600));
    expect(calls).toHaveLength(0); // 600 of 1,000 bytes and 1 of 5,000 records: it lingers
    await batcher.add(slice(0, 2, 1, 600)); // 1,200 bytes buffered: full by bytes, flushes at once
    expect(calls.map(offsetsOf)).toEqual([[1]]); // the second slice too would pass the budget
    await batcher.add(slice(0, 3, 1, 1500)); // buffered behind the commit: 2,100 bytes

    let fourthBuffered = false;
    const fourth = batcher.add(slice(0, 4, 1, 10)).then(() => (fourthBuffered = true));
    await settle();
    expect(fourthBuffered).toBe(false); // full by bytes, with 4 records of 5,000: backpressure
    calls[0]!.finish();
    await settle();
    expect(offsetsOf(calls[1])).toEqual([2]);
    expect(fourthBuffered).toBe(false); // 1,500 bytes still wait
    calls[1]!.finish();
    await fourth;
    expect(offsetsOf(calls[2])).toEqual([3]); // bigger than the budget: taken, alone
    calls[2]!.finish();
    const drained = batcher.drain(); // the last slice is small: drain rather than wait for its linger
    await settle();
    calls[3]!.finish();
    await drained;
    expect(calls.map(offsetsOf)).toEqual([[1], [2], [3], [4]]);
  });
  it('is not held back by the wall clock stepping back (NTP, a VM resumed): its times are monotonic', async () => {
    const { calls, flush } = manualFlush();
    const batcher = new MicroBatcher(fixed(10, 50), flush);
    await batcher.add(slice(0, 10, 10)); // full: a flush starts
    await batcher.add(slice(0, 12, 2)); // buffered while it commits
    const realNow = Date.now();
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow - 3_600_000); // an hour back
    try {
      calls[0]!.finish();
      // Ten lingers (waitFor's own deadline reads the mocked clock, so a plain timer here).
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(calls).toHaveLength(2); // held for the hour the clock went back, before
      expect(batcher.stalledMs()).toBeLessThan(60_000);
    } finally {
      clock.mockRestore();
    }
  });

  it('settles once the work buffered before is committed, however much the lane\'s other partitions keep adding', async () => {
    const { calls, flush } = manualFlush();
    const batcher = new MicroBatcher(fixed(10), flush);
    await batcher.add(slice(1, 10, 10)); // a busy sibling partition: commits at once
    await batcher.add(slice(0, 5, 5)); // the partition whose log was reset, behind it
    let settled = false;
    const waited = batcher.settled(0).then(() => (settled = true));
    // The sibling keeps the lane full: each flush makes room, and its next slice takes it.
    for (let i = 0; i < 4; i++) {
      const next = batcher.add(slice(1, 20 + 10 * i, 10));
      calls[i]!.finish();
      await next;
      await settle();
      if (i === 0) expect(settled).toBe(false); // partition 0's slice is committing now
    }
    await waited;
    expect(settled).toBe(true);
    expect(calls[1]!.works.map((w) => [w.partition, Number(w.nextOffset)])).toContainEqual([0, 5]);
    // drain() would still be waiting: the lane is never empty while the sibling adds.
    expect(batcher.pendingRecords).toBeGreaterThan(0);
  });

  it('settles with the lane\'s failure when a commit of the work before fails', async () => {
    const { calls, flush } = manualFlush();
    const batcher = new MicroBatcher(fixed(10, 60_000), flush);
    await batcher.add(slice(0, 5, 5)); // under the target: it would linger a minute
    const waited = batcher.settled(0);
    expect(calls).toHaveLength(1); // settled commits it at once
    calls[0]!.finish(new Error('connection reset'));
    await expect(waited).rejects.toThrow('connection reset');
  });

  it("settles only once the partition's work still waiting for room is committed too (a position-only work not awaited)", async () => {
    const { calls, flush } = manualFlush();
    const batcher = new MicroBatcher(fixed(10), flush);
    await batcher.add(slice(1, 10, 10)); // committing
    await batcher.add(slice(1, 20, 10)); // buffered: the lane is full
    // Partition 0's work (records kafkajs stepped over, say) waits for room, not awaited.
    void batcher.add(slice(0, 7, 0));
    let settled = false;
    const waited = batcher.settled(0).then(() => (settled = true));
    calls[0]!.finish(); // room: partition 0's work is buffered behind partition 1's
    await settle();
    expect(settled).toBe(false);
    expect(calls[1]!.works.map((w) => w.partition)).toEqual([1]);
    calls[1]!.finish();
    await settle();
    // Partition 0's work commits in a flush of its own: not settled until it is done.
    expect(calls[2]!.works.map((w) => [w.partition, Number(w.nextOffset)])).toEqual([[0, 7]]);
    expect(settled).toBe(false);
    calls[2]!.finish();
    await waited;
    expect(settled).toBe(true);
  });

  it('settles at once for a partition with nothing in the lane, however busy the others', async () => {
    const { calls, flush } = manualFlush();
    const batcher = new MicroBatcher(fixed(10), flush);
    await batcher.add(slice(1, 10, 10)); // committing, never finished
    await batcher.settled(0);
    expect(calls).toHaveLength(1);
  });
});
