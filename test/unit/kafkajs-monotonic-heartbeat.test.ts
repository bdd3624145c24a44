/**
 * kafkajs 2.2.4 spaces a group member's heartbeats by the wall clock: after a step back (an
 * NTP step, a resumed VM), Date.now() stayed below the last heartbeat's time for as long as
 * the step, and no heartbeat went out. The broker evicted the member after the session
 * timeout and gave its partitions to others, while it went on fetching and committing them:
 * fetches do not check membership, and refused Kafka commits are only logged. patches/ times
 * heartbeats (and request timeouts and throttling) on the monotonic clock; this checks
 * kafkajs's own ConsumerGroup, as installed, with the patch applied.
 */
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';

interface ConsumerGroupLike {
  memberId: string | null;
  coordinator: { heartbeat: (payload: unknown) => Promise<void> } | null;
  heartbeat(options: { interval: number }): Promise<void>;
}
type ConsumerGroupClass = new (options: Record<string, unknown>) => ConsumerGroupLike;

const ConsumerGroup = createRequire(import.meta.url)('kafkajs/src/consumer/consumerGroup.js') as ConsumerGroupClass;

function memberWithCoordinator(): { group: ConsumerGroupLike; beats: () => number } {
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
  const group = new ConsumerGroup({
    retry: { retries: 0 },
    cluster: {},
    groupId: 'g',
    topics: [],
    topicConfigurations: {},
    logger: { namespace: () => quiet },
    instrumentationEmitter: { emit: () => undefined },
    assigners: [],
  });
  let beats = 0;
  group.memberId = 'member-1';
  group.coordinator = {
    heartbeat: async () => {
      beats++;
    },
  };
  return { group, beats: () => beats };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('kafkajs heartbeats, patched', () => {
  it('go out on time after the wall clock steps back an hour', async () => {
    const { group, beats } = memberWithCoordinator();
    await group.heartbeat({ interval: 0 });
    const realNow = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(realNow - 3_600_000);
    await group.heartbeat({ interval: 0 });
    await group.heartbeat({ interval: 0 });
    expect(beats()).toBe(3);
  });

  it('are still spaced by the interval', async () => {
    const { group, beats } = memberWithCoordinator();
    await group.heartbeat({ interval: 0 });
    await group.heartbeat({ interval: 60_000 });
    expect(beats()).toBe(1);
  });
});
