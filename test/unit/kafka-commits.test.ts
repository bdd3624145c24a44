import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { trailingKafkaCommits } from '../../src/ingest/kafka-commits';
import { createLogger } from '../../src/log';

const TOPIC = 'events';
const TICK_MS = 1000;
const logger = createLogger({ logLevel: 'silent' });

type Commit = { topic: string; partition: number; offset: string }[];

/** A consumer whose commits answer as `answer` says, and the assignment the group gave this member. */
function fakeGroup(answer: (commit: Commit) => Promise<void> = async () => undefined) {
  const commits: Commit[] = [];
  let assigned: number[] = [0, 1];
  const consumer = {
    commitOffsets: (commit: Commit) => {
      commits.push(commit);
      return answer(commit);
    },
  };
  const kafkaCommits = trailingKafkaCommits({ consumer, logger, assignedPartitions: () => assigned });
  return { commits, kafkaCommits, assign: (partitions: number[]) => (assigned = partitions) };
}

const offset = (partition: number, nextOffset: bigint) => ({ topic: TOPIC, partition, nextOffset });

/** Commits Kafka takes at once, but the one of `offset`, held in flight until `refuse` fails it with `message`. */
function heldThenRefused(offset: string, message: string) {
  let refuse: () => void = () => undefined;
  const answer = (commit: Commit) => (commit[0]?.offset === offset ? new Promise<void>((_, reject) => (refuse = () => reject(new Error(message)))) : Promise.resolve());
  return { answer, refuse: () => refuse() };
}

describe('Kafka commits trailing Postgres', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('sends a commit Kafka refused again at a later tick (a rebalance refuses them; an idle partition would show lag for good)', async () => {
    let refuse = true;
    const { commits, kafkaCommits } = fakeGroup(async () => {
      if (refuse) throw new Error('The group is rebalancing, so a rejoin is needed');
    });
    kafkaCommits.note([offset(0, 10n)]);
    await vi.advanceTimersByTimeAsync(TICK_MS);
    expect(commits).toEqual([[{ topic: TOPIC, partition: 0, offset: '10' }]]);

    refuse = false;
    await vi.advanceTimersByTimeAsync(TICK_MS);
    expect(commits).toEqual([[{ topic: TOPIC, partition: 0, offset: '10' }], [{ topic: TOPIC, partition: 0, offset: '10' }]]);
    await vi.advanceTimersByTimeAsync(3 * TICK_MS);
    expect(commits).toHaveLength(2); // taken: nothing left to send
    await kafkaCommits.stop(TICK_MS);
  });

  it('lets a newer offset noted while a commit was in flight win over that commit\'s refused older one', async () => {
    const held = heldThenRefused('10', 'Specified group generation id is not valid');
    const { commits, kafkaCommits } = fakeGroup(held.answer);
    kafkaCommits.note([offset(0, 10n)]);
    await vi.advanceTimersByTimeAsync(TICK_MS);
    kafkaCommits.note([offset(0, 25n)]);
    held.refuse();
    await vi.advanceTimersByTimeAsync(TICK_MS);
    expect(commits.map((c) => c.map((o) => o.offset))).toEqual([['10'], ['25']]);
    await vi.advanceTimersByTimeAsync(3 * TICK_MS);
    expect(commits).toHaveLength(2);
    await kafkaCommits.stop(TICK_MS);
  });

  it('sends what is pending when stopped, before the next tick (the last commits before the member leaves)', async () => {
    const { commits, kafkaCommits } = fakeGroup();
    kafkaCommits.note([offset(0, 7n), offset(1, 3n)]);
    await kafkaCommits.stop(TICK_MS);
    expect(commits).toEqual([
      [
        { topic: TOPIC, partition: 0, offset: '7' },
        { topic: TOPIC, partition: 1, offset: '3' },
      ],
    ]);
    await vi.advanceTimersByTimeAsync(3 * TICK_MS);
    expect(commits).toHaveLength(1); // no ticks after the stop
  });

  it('ends a stop within its limit when Kafka does not answer', async () => {
    const { commits, kafkaCommits } = fakeGroup(() => new Promise(() => undefined));
    kafkaCommits.note([offset(0, 7n)]);
    const stopped = kafkaCommits.stop(500);
    await vi.advanceTimersByTimeAsync(500);
    await expect(stopped).resolves.toBeUndefined();
    expect(commits).toHaveLength(1);
  });

  it('commits no partition this member no longer owns (the group would take it and put the new owner\'s offset back)', async () => {
    const { commits, kafkaCommits, assign } = fakeGroup();
    kafkaCommits.note([offset(0, 10n), offset(1, 20n)]);
    assign([1]); // a rebalance before the tick: partition 0 went to another member
    kafkaCommits.note([offset(0, 12n)]); // a lane's commit that landed after it
    await vi.advanceTimersByTimeAsync(TICK_MS);
    expect(commits).toEqual([[{ topic: TOPIC, partition: 1, offset: '20' }]]);
    await kafkaCommits.stop(TICK_MS);
  });

  it('drops an offset noted while its partition was another member\'s, even once the partition is back', async () => {
    const { commits, kafkaCommits, assign } = fakeGroup();
    assign([1]);
    kafkaCommits.note([offset(0, 12n)]); // a lane's commit from before the rebalance, landing late
    assign([0, 1]); // another rebalance gives partition 0 back before the tick
    await vi.advanceTimersByTimeAsync(TICK_MS);
    await kafkaCommits.stop(TICK_MS);
    expect(commits).toEqual([]);
  });

  it('sends a rewound position instead of the higher one pending (a log reset: the old log\'s position would point past the new log)', async () => {
    const { commits, kafkaCommits } = fakeGroup();
    kafkaCommits.note([offset(0, 1000n)]); // the join's position, of the topic before it was recreated
    kafkaCommits.rewound(offset(0, 0n));
    await vi.advanceTimersByTimeAsync(TICK_MS);
    expect(commits).toEqual([[{ topic: TOPIC, partition: 0, offset: '0' }]]);
    kafkaCommits.note([offset(0, 40n)]); // the new log's records, read again
    await vi.advanceTimersByTimeAsync(TICK_MS);
    expect(commits.at(-1)).toEqual([{ topic: TOPIC, partition: 0, offset: '40' }]);
    await kafkaCommits.stop(TICK_MS);
  });

  it('does not send again the higher position of a commit Kafka refused while the partition was rewound', async () => {
    const held = heldThenRefused('1000', 'The group is rebalancing');
    const { commits, kafkaCommits } = fakeGroup(held.answer);
    kafkaCommits.note([offset(0, 1000n)]);
    await vi.advanceTimersByTimeAsync(TICK_MS); // 1000 in flight
    kafkaCommits.rewound(offset(0, 0n));
    held.refuse();
    await vi.advanceTimersByTimeAsync(TICK_MS);
    expect(commits.map((c) => c.map((o) => o.offset))).toEqual([['1000'], ['0']]);
    await vi.advanceTimersByTimeAsync(3 * TICK_MS);
    expect(commits).toHaveLength(2);
    await kafkaCommits.stop(TICK_MS);
  });
});
