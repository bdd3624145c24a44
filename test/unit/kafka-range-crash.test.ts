/**
 * The Kafka-range backfill's reader when kafkajs's consumer crashes for good (restart: false,
 * e.g. an error kafkajs counts as not retriable): the read must fail with that error, not
 * wait for records that will never come until the activity's heartbeat times out, attempt
 * after attempt, with the cause only in the worker's log. kafkajs cannot be made to crash on
 * demand against the real broker, so its consumer is stood in for here: only its event hooks
 * and lifecycle calls, which is all consumeRange uses.
 */
import { EventEmitter } from 'node:events';
import type { Kafka } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { consumeRange } from '../../src/batch/backfill/kafka-source';

function crashingKafka(restart: boolean): { kafka: Kafka; disconnected: () => boolean } {
  const emitter = new EventEmitter();
  let disconnected = false;
  const consumer = {
    events: { CRASH: 'consumer.crash', GROUP_JOIN: 'consumer.group_join', START_BATCH_PROCESS: 'consumer.start_batch_process' },
    on: (event: string, listener: (e: unknown) => void) => emitter.on(event, listener),
    connect: async () => undefined,
    subscribe: async () => undefined,
    run: async () => {
      setTimeout(() => emitter.emit('consumer.crash', { payload: { error: new Error('Maximum call stack size exceeded'), groupId: 'g', restart } }), 10);
    },
    pause: () => undefined,
    seek: () => undefined,
    disconnect: async () => {
      disconnected = true;
    },
  };
  const admin = { connect: async () => undefined, disconnect: async () => undefined, listTopics: async () => ['t'], fetchTopicOffsets: async () => [{ partition: 0, low: '0', high: '10' }] };
  return { kafka: { consumer: () => consumer, admin: () => admin } as unknown as Kafka, disconnected: () => disconnected };
}

describe('consumeRange when the consumer crashes', () => {
  const range = { start: { '0': '0' }, end: { '0': '10' } };

  it('fails with the crash, and lets go of its consumer', async () => {
    const { kafka, disconnected } = crashingKafka(false);
    await expect(consumeRange(kafka, 't', range.start, range, 100, async () => undefined, new AbortController().signal)).rejects.toThrow('Maximum call stack size exceeded');
    expect(disconnected()).toBe(true);
  });

  it('waits on through a crash kafkajs restarts from', async () => {
    const { kafka } = crashingKafka(true);
    const abort = new AbortController();
    const read = consumeRange(kafka, 't', range.start, range, 100, async () => undefined, abort.signal);
    const outcome = await Promise.race([read.then(() => 'ended', () => 'failed'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 300))]);
    expect(outcome).toBe('waiting');
    abort.abort(); // the sweep sees it within a second
    await expect(read).resolves.toEqual({ '0': '0' });
  });
});
