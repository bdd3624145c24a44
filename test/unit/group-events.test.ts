/**
 * What a join hands on: the positions it loaded from Postgres go to whoever restarts from them
 * (Kafka's trailing commits, which a crash-restart's rejoin left with nothing to send for an
 * idle partition), once they are loaded, and not before.
 */
import { EventEmitter } from 'node:events';
import type { Consumer } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { watchGroupEvents, type GroupEventDeps } from '../../src/ingest/group-events';
import { createLogger } from '../../src/log';

const EVENTS = { GROUP_JOIN: 'consumer.group_join', REBALANCING: 'consumer.rebalancing', CRASH: 'consumer.crash' };

function fakeConsumer() {
  const emitter = new EventEmitter();
  const consumer = { events: EVENTS, on: (event: string, listener: (e: unknown) => void) => emitter.on(event, listener), seek: () => undefined } as unknown as Consumer;
  return { consumer, join: (partitions: number[]) => emitter.emit(EVENTS.GROUP_JOIN, { payload: { memberAssignment: { 'hunt.events': partitions } } }) };
}

describe('watchGroupEvents', () => {
  it("hands on each join's positions once they are loaded from Postgres", async () => {
    const { consumer, join } = fakeConsumer();
    let loaded: (stored: Map<number, bigint>) => void = () => undefined;
    const resumed: [number, bigint][][] = [];
    const deps = {
      topic: 'hunt.events',
      groupId: 'g',
      positions: { resume: () => new Promise<Map<number, bigint>>((resolve) => (loaded = resolve)) },
      health: { setAssignment: () => undefined, markOutOfGroup: () => undefined, markCrashed: () => undefined },
      metrics: { partitionsAssigned: { reset: () => undefined, set: () => undefined }, consumerCrashes: { inc: () => undefined } },
      logger: createLogger({ logLevel: 'silent' }),
      onFatal: () => undefined,
      commitBuffered: async () => undefined,
      isStopping: () => false,
      onResumed: (stored: ReadonlyMap<number, bigint>) => void resumed.push([...stored]),
    } as unknown as GroupEventDeps;
    watchGroupEvents(consumer, deps);

    join([0, 2]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(resumed).toEqual([]); // still loading
    loaded(new Map([[0, 120n], [2, 7n]]));
    await new Promise((resolve) => setImmediate(resolve));
    expect(resumed).toEqual([[[0, 120n], [2, 7n]]]);
  });
});
