/**
 * The input topic's eachBatch, on hand-made fetches: what it counts as read and hands to the
 * commit lane, when the fetch is current, when a seek made it stale while it was checked, and
 * when the group starts rebalancing.
 */
import { describe, expect, it } from 'vitest';
import type { Batch, Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { createBatchHandler } from '../../src/ingest/batch-handler';
import type { MicroBatcher, SliceWork } from '../../src/ingest/batcher';
import { createIngestMetrics } from '../../src/ingest/metrics';
import type { PartitionPositions } from '../../src/ingest/positions';
import { clueFound } from '../helpers/event-builders';

const TOPIC = 'events';

function recordAt(offset: number): KafkaMessage {
  const event = clueFound({ eventId: `e${offset}`, occurredAt: new Date(Date.now() - 60_000).toISOString() });
  return { offset: String(offset), key: Buffer.from('h1'), value: Buffer.from(JSON.stringify(event)), timestamp: String(Date.now() - 5), attributes: 0, headers: {} } as KafkaMessage;
}

/** A handler whose position check takes every fetch, and whose lane keeps what it is given. */
function handlerWith(isStaleAfterCheck: () => boolean, heartbeat: () => Promise<void> = async () => undefined) {
  const metrics = createIngestMetrics();
  const added: SliceWork[] = [];
  const lane = { add: async (work: SliceWork) => void added.push(work) } as unknown as MicroBatcher;
  let checked = false;
  const events: string[] = [];
  let held = false;
  const positions = {
    check: async () => {
      checked = true; // a seek kafkajs notes from here on makes the fetch stale
      return { action: 'take' as const };
    },
    advance: () => undefined,
    verified: () => undefined,
    holdForRejoin: () => {
      held = true;
      events.push('hold');
    },
    get heldForRejoin() {
      return held;
    },
  } as unknown as PartitionPositions;
  const handle = createBatchHandler({
    topic: TOPIC,
    consumer: { seek: () => undefined } as unknown as Consumer,
    positions,
    onRetentionGap: async () => true,
    onLogReset: async () => undefined,
    laneOf: () => lane,
    metrics,
    maxBatchEvents: 500,
    isApplied: async () => true,
    commitBuffered: async () => void events.push('commit buffered'),
  });
  const resolved: string[] = [];
  const run = (messages: KafkaMessage[]) =>
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
      heartbeat,
      isRunning: () => true,
      isStale: () => checked && isStaleAfterCheck(),
    } as unknown as EachBatchPayload);
  const readCount = async () => (await metrics.recordsRead.get()).values[0]?.value ?? 0;
  const fetchDelayCount = async () => (await metrics.fetchDelaySeconds.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
  return { run, added, resolved, readCount, fetchDelayCount, events };
}

describe('createBatchHandler', () => {
  it('counts a current fetch as read and hands all of it to the lane', async () => {
    const handler = handlerWith(() => false);
    await handler.run([0, 1, 2].map(recordAt));
    expect(handler.added.map((w) => w.recordCount)).toEqual([3]);
    expect(handler.resolved).toEqual(['2']);
    expect(await handler.readCount()).toBe(3);
    expect(await handler.fetchDelayCount()).toBe(3);
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
});
