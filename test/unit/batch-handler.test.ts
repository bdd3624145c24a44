/**
 * The input topic's eachBatch, on hand-made fetches: what it counts as read and hands to the
 * commit lane, when the fetch is current, when a seek made it stale while it was checked, and
 * when the group starts rebalancing.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { Batch, Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { CLASSIFY_SLICE_BYTES, createBatchHandler, REJOIN_OVERDUE_MS } from '../../src/ingest/batch-handler';
import type { MicroBatcher, SliceWork } from '../../src/ingest/batcher';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { PositionsLoading, type FetchCheck, type PartitionPositions } from '../../src/ingest/positions';
import { clueFound } from '../helpers/event-builders';

const TOPIC = 'events';

function recordAt(offset: number): KafkaMessage {
  const event = clueFound({ eventId: `e${offset}`, occurredAt: new Date(Date.now() - 60_000).toISOString() });
  return { offset: String(offset), key: Buffer.from('h1'), value: Buffer.from(JSON.stringify(event)), timestamp: String(Date.now() - 5), attributes: 0, headers: {} } as KafkaMessage;
}

interface HandlerOptions {
  /** The position check (default: take every fetch). */
  check?: () => Promise<FetchCheck>;
  isApplied?: () => Promise<boolean>;
  /** The lane's add (default: keeps every slice at once). */
  add?: (work: SliceWork, signal: AbortSignal | undefined, added: SliceWork[]) => Promise<boolean>;
  /** The clock of the hold for a rejoin (default: none passes). */
  now?: () => number;
  /** The lanes' commit before a rejoin (default: done at once). */
  commitBuffered?: () => Promise<void>;
}

/** A handler whose position check takes every fetch (unless told), and whose lane keeps what it is given. */
function handlerWith(isStaleAfterCheck: () => boolean, heartbeat: () => Promise<void> = async () => undefined, options: HandlerOptions = {}) {
  const metrics = createIngestMetrics();
  const added: SliceWork[] = [];
  const keep = async (work: SliceWork) => added.push(work) > 0;
  const lane = { add: (work: SliceWork, signal?: AbortSignal) => (options.add ? options.add(work, signal, added) : keep(work)) } as unknown as MicroBatcher;
  const rejoining = new AbortController();
  let checked = false;
  const events: string[] = [];
  let held = false;
  let handedOverAt: number | undefined;
  const now = options.now ?? (() => 0);
  const positions = {
    check: async () => {
      checked = true; // a seek kafkajs notes from here on makes the fetch stale
      return options.check ? options.check() : { action: 'take' as const };
    },
    advance: () => undefined,
    verified: () => void events.push('verified'),
    holdForRejoin: () => {
      held = true;
      rejoining.abort();
      events.push('hold');
    },
    get heldForRejoin() {
      return held;
    },
    rejoinHandedOver: () => void (held && (handedOverAt = now())),
    sinceRejoinHandedOver: () => (held && handedOverAt !== undefined ? now() - handedOverAt : 0),
    get rejoinSignal() {
      return rejoining.signal;
    },
  } as unknown as PartitionPositions;
  const handle = createBatchHandler({
    topic: TOPIC,
    consumer: { seek: () => undefined } as unknown as Consumer,
    positions,
    onRetentionGap: async () => true,
    onLogReset: async () => void events.push('log reset'),
    laneOf: () => lane,
    metrics,
    maxBatchEvents: 500,
    isApplied: options.isApplied ?? (async () => true),
    commitBuffered: async () => {
      await options.commitBuffered?.();
      events.push('commit buffered');
    },
    onCheckFailed: (err) => void events.push(`check failed: ${(err as Error).message}`),
  });
  const resolved: string[] = [];
  const run = (messages: KafkaMessage[], fetchHeartbeat = heartbeat) =>
    handle({
      batch: {
        topic: TOPIC,
        partition: 0,
        highWatermark: String(messages.length),
        messages,
        firstOffset: () => messages[0]?.offset ?? null,
        lastOffset: () => messages[messages.length - 1]!.offset,
        fetchedOffset: '0',
      } as unknown as Batch,
      resolveOffset: (offset: string) => void resolved.push(offset),
      heartbeat: fetchHeartbeat,
      isRunning: () => true,
      isStale: () => checked && isStaleAfterCheck(),
    } as unknown as EachBatchPayload);
  const readCount = async () => (await metrics.recordsRead.get()).values[0]?.value ?? 0;
  const fetchDelayCount = async () => (await metrics.fetchDelaySeconds.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
  return { run, added, resolved, readCount, fetchDelayCount, events };
}

describe('createBatchHandler', () => {
  it('keeps no fetch alive through the slices its lane holds: they beat with the latest fetch\'s heartbeat', async () => {
    // kafkajs makes each fetch's heartbeat beside its batch (the fetch response), and a
    // closure keeps its scope: a slice that kept its own fetch's heartbeat, waiting in a
    // stalled lane, kept that whole response in memory.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const handler = handlerWith(() => false);
    const fetches: WeakRef<object>[] = [];
    const beats: number[] = [];
    for (let i = 0; i < 5; i++) {
      const response = { bytes: Buffer.alloc(1024 * 1024, i) };
      fetches.push(new WeakRef(response));
      await handler.run([recordAt(i)], async () => void beats.push(response.bytes[0]!));
    }
    expect(handler.added).toHaveLength(5); // all still held by the lane
    await new Promise((resolve) => setTimeout(resolve, 0)); // a WeakRef holds its target to the end of the job
    gc();
    expect(fetches.map((f) => f.deref() !== undefined)).toEqual([false, false, false, false, true]);
    // The slices held still beat for the member, with the latest fetch's heartbeat.
    const before = beats.length;
    await Promise.all(handler.added.map((w) => w.heartbeat()));
    expect(beats.slice(before)).toEqual([4, 4, 4, 4, 4]);
  });

  it('counts a current fetch as read and hands all of it to the lane', async () => {
    const handler = handlerWith(() => false);
    await handler.run([0, 1, 2].map(recordAt));
    expect(handler.added.map((w) => w.recordCount)).toEqual([3]);
    expect(handler.resolved).toEqual(['2']);
    expect(await handler.readCount()).toBe(3);
    expect(await handler.fetchDelayCount()).toBe(3);
  });

  it('cuts a fetch of large records into slices of about CLASSIFY_SLICE_BYTES, so a lane holds megabytes, not a fetch\'s worth of rejects', async () => {
    // 100 records of 256 KiB: one gzip batch of a few hundred KB on the wire. Cut by count
    // alone, they made one slice of 25 MiB of rejects' copies (250 records: 62.5 MiB), and a
    // lane holds three slices.
    const big = (offset: number) => ({ ...recordAt(offset), value: Buffer.alloc(256 * 1024, 0x78) }) as KafkaMessage;
    const handler = handlerWith(() => false);
    await handler.run([...Array.from({ length: 100 }, (_, i) => big(i)), recordAt(100), recordAt(101)]);
    const slices = handler.added;
    expect(slices.reduce((sum, w) => sum + w.recordCount, 0)).toBe(102);
    for (const work of slices) expect(work.byteCount).toBeLessThan(CLASSIFY_SLICE_BYTES + 256 * 1024 + 1024);
    expect(slices.length).toBeGreaterThanOrEqual(20);
    expect(slices.map((w) => w.slice.rejected.length).reduce((a, b) => a + b, 0)).toBe(100);
    expect(handler.resolved.at(-1)).toBe('101');
    // Ordinary events still go 250 to a slice (the handler's maxBatchEvents is 500).
    const small = handlerWith(() => false);
    await small.run(Array.from({ length: 600 }, (_, i) => recordAt(i)));
    expect(small.added.map((w) => w.recordCount)).toEqual([250, 250, 100]);
  });

  it('neither counts nor takes a fetch a seek made stale while its start was checked', async () => {
    // kafkajs fetches the partition again from the seek, so counting this one too would read
    // every record twice in the metrics (as a join's seek during the first fetch once did).
    const handler = handlerWith(() => true);
    await handler.run([0, 1, 2].map(recordAt));
    expect(handler.added).toEqual([]);
    expect(handler.resolved).toEqual([]);
    expect(await handler.readCount()).toBe(0);
    expect(await handler.fetchDelayCount()).toBe(0);
  });

  it('on a rebalance seen at its heartbeat, commits what the lanes buffered before kafkajs rejoins, and takes nothing more until then', async () => {
    // The members given our partitions start from Postgres: what we buffered and did not
    // commit they would read again, copying its rejects to the DLQ a second time.
    let rebalancing = false;
    const handler = handlerWith(() => false, async () => {
      if (rebalancing) throw Object.assign(new Error('The group is rebalancing, so a rejoin is needed'), { type: 'REBALANCE_IN_PROGRESS' });
    });
    await handler.run([0, 1, 2].map(recordAt));
    rebalancing = true;
    await expect(handler.run([3, 4].map(recordAt))).rejects.toMatchObject({ type: 'REBALANCE_IN_PROGRESS' });
    expect(handler.events).toEqual(['hold', 'commit buffered']);
    // Another partition's fetch, still in flight: left for the owner after the rejoin.
    await handler.run([5, 6].map(recordAt));
    expect(handler.added.map((w) => w.recordCount)).toEqual([3, 2]);
    expect(handler.resolved).toEqual(['2', '4']);
  });

  it('tells kafkajs to rejoin again when it fetches on long after the member left to rejoin (its join failed)', async () => {
    // kafkajs forgets a member it is told it no longer knows, joins again once, and when that
    // join fails fetches on outside the group: the handler dropped every fetch, for good.
    let clock = 0;
    const beat = async () => {
      throw Object.assign(new Error('The coordinator is not aware of this member'), { type: 'UNKNOWN_MEMBER_ID' });
    };
    let committed: () => void = () => undefined;
    const commit = new Promise<void>((resolve) => (committed = resolve));
    const handler = handlerWith(() => false, beat, { now: () => clock, commitBuffered: () => commit });
    const leaving = handler.run([0, 1].map(recordAt));
    while (!handler.events.includes('hold')) await new Promise((resolve) => setImmediate(resolve));
    // Another partition's fetch, already made, while the lanes commit (up to 15 s): dropped, no error.
    clock += 10_000;
    await handler.run([2].map(recordAt));
    committed();
    await expect(leaving).rejects.toMatchObject({ type: 'UNKNOWN_MEMBER_ID' });
    clock += 100;
    await handler.run([2].map(recordAt));
    // Fetched on, seconds later: kafkajs is outside the group and must rejoin.
    clock += REJOIN_OVERDUE_MS;
    await expect(handler.run([3].map(recordAt))).rejects.toMatchObject({ type: 'REBALANCE_IN_PROGRESS', name: 'RejoinOverdueError' });
    expect(handler.added.map((w) => w.recordCount)).toEqual([2]);
  });

  it('on a rebalance reported while a slice waits for room, stops waiting, commits what the lanes hold and goes to rejoin, taking no more of the fetch', async () => {
    // Seen only once the whole fetch was buffered, it waited a lane commit per slice (up to
    // the statement limit each), past the group's rebalance timeout: the member was dropped
    // while still taking its old partitions, which their new owners read again.
    let release: () => void = () => undefined;
    const roomLater = new Promise<void>((resolve) => (release = resolve));
    const handler = handlerWith(
      () => false,
      async () => {
        throw Object.assign(new Error('The group is rebalancing, so a rejoin is needed'), { type: 'REBALANCE_IN_PROGRESS' });
      },
      {
        add: async (work, signal, added) => {
          if (added.length > 0) {
            // The lane is full until its commit ends (or the member is to rejoin).
            await Promise.race([roomLater, new Promise((resolve) => signal?.addEventListener('abort', resolve))]);
            if (signal?.aborted) return false;
          }
          return added.push(work) > 0;
        },
      },
    );
    const room = setTimeout(release, 4_000);
    try {
      await expect(handler.run(Array.from({ length: 600 }, (_, i) => recordAt(i)))).rejects.toMatchObject({ type: 'REBALANCE_IN_PROGRESS' });
    } finally {
      clearTimeout(room);
    }
    expect(handler.events).toEqual(['hold', 'commit buffered']);
    expect(handler.added.map((w) => w.recordCount)).toEqual([250]);
    expect(handler.resolved).toEqual(['249']);
  });

  it('checks a fetch again while Postgres is unreachable, heartbeating between tries, instead of failing to kafkajs', async () => {
    // Thrown, kafkajs would retry a few times and then crash the consumer, leaving the group
    // and rebalancing every member, again and again while the outage lasts.
    let heartbeats = 0;
    const failures = [new Error('Connection terminated unexpectedly'), new PositionsLoading(), new Error('Connection terminated unexpectedly')];
    const handler = handlerWith(() => false, async () => void heartbeats++, {
      check: async () => {
        const failure = failures.shift();
        if (failure) throw failure;
        return { action: 'take' };
      },
    });
    await handler.run([0, 1, 2].map(recordAt));
    expect(handler.added.map((w) => w.recordCount)).toEqual([3]);
    // A join's positions loading is waited for without a warning.
    expect(handler.events).toEqual(['check failed: Connection terminated unexpectedly', 'check failed: Connection terminated unexpectedly']);
    expect(heartbeats).toBeGreaterThanOrEqual(3);
  });

  it('makes the check of the record before the position again when it fails, and marks it verified only once done', async () => {
    // Marked first, a failed check was passed over on the next try: a log replaced while
    // the member was down was read on from the old position, its first records never applied.
    let tries = 0;
    const handler = handlerWith(() => false, undefined, {
      check: async () => ({ action: 'verify', offset: 0n, position: 1n, logStart: 0n }),
      isApplied: async () => {
        if (++tries === 1) throw new Error('Connection terminated unexpectedly');
        return false; // another record at that offset: the log was replaced
      },
    });
    await handler.run([0, 1, 2].map(recordAt));
    expect(handler.events).toEqual(['check failed: Connection terminated unexpectedly', 'log reset', 'verified']);
    expect(handler.added).toEqual([]);
  });
});
