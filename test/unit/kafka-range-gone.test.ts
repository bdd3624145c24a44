/**
 * When a Kafka backfill's range can never be read again (range-check.ts): the topic deleted,
 * a partition gone, or a log that now ends before the range's end (the topic deleted and
 * created again). A range already read, or a log that grew, is fine; and one answer is not
 * enough, a gone range must be seen for a while.
 */
import type { Kafka } from 'kafkajs';
import { describe, expect, it, vi } from 'vitest';
import { consumeRange } from '../../src/batch/backfill/kafka-source';
import { GoneRangeWatch, KafkaRangeGoneError, rangeGoneReason } from '../../src/batch/backfill/range-check';

const range = { start: { '0': '0', '1': '0' }, end: { '0': '100', '1': '50' } };

describe('rangeGoneReason', () => {
  it('is undefined while every unread partition still holds its range', () => {
    expect(rangeGoneReason('t', { high: { '0': '100', '1': '70' } }, { '0': '40', '1': '10' }, range)).toBeUndefined();
  });

  it('names the topic and the unread records when the topic is deleted', () => {
    const reason = rangeGoneReason('hunt.events', undefined, { '0': '40', '1': '50' }, range);
    expect(reason).toMatch(/^Kafka topic hunt\.events was deleted while the backfill read it \(60 records of its range unread\)/);
    expect(reason).toMatch(/start a new backfill/);
  });

  it('sees a recreated topic: a log that ends before the range end, even past the cursor', () => {
    expect(rangeGoneReason('t', { high: { '0': '30', '1': '50' } }, { '0': '40', '1': '20' }, range)).toMatch(/partition 0 now ends at offset 30, before the end of the backfill's range \(100, read up to 40\)/);
    expect(rangeGoneReason('t', { high: { '0': '60', '1': '50' } }, { '0': '40', '1': '20' }, range)).toMatch(/deleted and created again/);
  });

  it('sees a partition that is gone', () => {
    expect(rangeGoneReason('t', { high: { '0': '100' } }, { '0': '40', '1': '20' }, range)).toMatch(/no partition 1 any more/);
  });

  it('does not care once the range is read, whatever became of the topic', () => {
    expect(rangeGoneReason('t', undefined, range.end, range)).toBeUndefined();
    expect(rangeGoneReason('t', { high: { '0': '0' } }, { '0': '100', '1': '50' }, range)).toBeUndefined();
  });
});

describe('GoneRangeWatch', () => {
  it('confirms a reason only once it has held for the confirmation time, and forgets it on a good answer', () => {
    const watch = new GoneRangeWatch(5000);
    expect(watch.observe('gone', 0)).toBeUndefined();
    expect(watch.suspect).toBe(true);
    expect(watch.observe('gone', 4999)).toBeUndefined();
    expect(watch.observe(undefined, 5000)).toBeUndefined();
    expect(watch.suspect).toBe(false);
    expect(watch.observe('gone', 6000)).toBeUndefined();
    expect(watch.observe('gone', 11_000)).toBe('gone');
  });

  it('times the confirmation on a monotonic clock: a wall-clock step forward confirms nothing', () => {
    const watch = new GoneRangeWatch(5000);
    const wall = vi.spyOn(Date, 'now');
    try {
      wall.mockReturnValue(1_000_000);
      expect(watch.observe('gone')).toBeUndefined();
      wall.mockReturnValue(1_000_000 + 3_600_000); // an NTP step, a resumed VM
      expect(watch.observe('gone')).toBeUndefined();
    } finally {
      wall.mockRestore();
    }
  });
});

/**
 * consumeRange's sweep, with kafkajs stood in for (as in kafka-range-crash.test.ts): a
 * consumer that never hands over a record, and an admin that answers as the test says.
 */
function waitingKafka(answer: () => Promise<{ topics: string[]; high: string }>): Kafka {
  const consumer = {
    events: { CRASH: 'consumer.crash', GROUP_JOIN: 'consumer.group_join', START_BATCH_PROCESS: 'consumer.start_batch_process' },
    on: () => undefined,
    connect: async () => undefined,
    subscribe: async () => undefined,
    run: async () => undefined,
    pause: () => undefined,
    seek: () => undefined,
    disconnect: async () => undefined,
  };
  const admin = {
    connect: async () => undefined,
    disconnect: async () => undefined,
    listTopics: async () => (await answer()).topics,
    fetchTopicOffsets: async () => [{ partition: 0, low: '0', high: (await answer()).high }],
  };
  return { consumer: () => consumer, admin: () => admin } as unknown as Kafka;
}

describe('consumeRange while it waits on Kafka', () => {
  const oneRange = { start: { '0': '0' }, end: { '0': '10' } };

  it('calls onWaiting while the topic is there, and stops when aborted', async () => {
    let waited = 0;
    const abort = new AbortController();
    const read = consumeRange(waitingKafka(async () => ({ topics: ['t'], high: '10' })), 't', oneRange.start, oneRange, 100, async () => undefined, abort.signal, () => waited++);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    abort.abort();
    await expect(read).resolves.toEqual({ '0': '0' });
    expect(waited).toBeGreaterThanOrEqual(1);
  });

  it('fails with KafkaRangeGoneError, naming the topic, once the topic has been gone for the confirmation time', async () => {
    let deleted = false;
    let waited = 0;
    setTimeout(() => (deleted = true), 1500);
    const read = consumeRange(
      waitingKafka(async () => ({ topics: deleted ? [] : ['t'], high: '10' })),
      't',
      oneRange.start,
      oneRange,
      100,
      async () => undefined,
      new AbortController().signal,
      () => waited++,
    );
    const failure = await read.then(() => undefined, (err: unknown) => err);
    expect(failure).toBeInstanceOf(KafkaRangeGoneError);
    expect(String(failure)).toMatch(/Kafka topic t was deleted while the backfill read it/);
    expect(waited).toBeGreaterThanOrEqual(1); // before the deletion
  }, 15_000);

  it('waits on through an outage without heartbeating: the caller retries it on the heartbeat timeout', async () => {
    let down = false;
    let waitedWhileDown = 0;
    const abort = new AbortController();
    const read = consumeRange(
      waitingKafka(async () => {
        if (down) throw new Error('Connection error: connect ECONNREFUSED');
        return { topics: ['t'], high: '10' };
      }),
      't',
      oneRange.start,
      oneRange,
      100,
      async () => undefined,
      abort.signal,
      () => void (down && waitedWhileDown++),
    );
    await new Promise((resolve) => setTimeout(resolve, 200)); // past the first check
    down = true;
    await new Promise((resolve) => setTimeout(resolve, 7000)); // longer than the confirmation time
    abort.abort();
    await expect(read).resolves.toEqual({ '0': '0' });
    expect(waitedWhileDown).toBe(0);
  }, 15_000);
});
