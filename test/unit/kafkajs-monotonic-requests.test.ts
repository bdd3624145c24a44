/**
 * kafkajs 2.2.4 timed its request timeouts and client-side throttling by the wall clock: a
 * step forward (an NTP step, a resumed VM) timed out every request in flight at once and
 * ended a throttle the broker asked for; a step back left a request to a dead broker unended,
 * and a throttle standing, for as long as the step. patches/ times both on the monotonic
 * clock; this checks kafkajs's own RequestQueue, as installed, with the patch applied.
 */
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it, vi } from 'vitest';

interface InFlight {
  sentAt: number;
  sentAtMonotonic: number;
  requestTimeout: number;
  timeoutRequest: () => void;
}
interface RequestQueueLike {
  inflight: Map<number, InFlight>;
  maybeThrottle(ms: number): void;
  canSendSocketRequestImmediately(): boolean;
  scheduleRequestTimeoutCheck(): void;
  destroy(): void;
}
type RequestQueueClass = new (options: Record<string, unknown>) => RequestQueueLike;

const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as RequestQueueClass;

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
const queue = (enforceRequestTimeout: boolean) =>
  new RequestQueue({ maxInFlightRequests: null, requestTimeout: 30_000, enforceRequestTimeout, clientId: 'c', broker: 'b:9092', logger: quiet });

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('kafkajs requests, patched', () => {
  it('keep a throttle the broker asked for when the wall clock steps forward', () => {
    const q = queue(false);
    q.maybeThrottle(60_000);
    expect(q.canSendSocketRequestImmediately()).toBe(false);
    const realNow = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(realNow + 3_600_000);
    expect(q.canSendSocketRequestImmediately()).toBe(false);
  });

  it('do not all time out at once when the wall clock steps forward', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const q = queue(true);
    const timedOut = vi.fn();
    q.inflight.set(1, { sentAt: Date.now(), sentAtMonotonic: performance.now(), requestTimeout: 30_000, timeoutRequest: timedOut });
    q.scheduleRequestTimeoutCheck();
    try {
      const realNow = Date.now();
      vi.spyOn(Date, 'now').mockReturnValue(realNow + 3_600_000);
      vi.advanceTimersByTime(500); // the check runs every 100 ms
      expect(timedOut).not.toHaveBeenCalled();
    } finally {
      q.destroy();
    }
  });
});
