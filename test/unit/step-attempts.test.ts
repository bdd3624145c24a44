/**
 * Which pending steps show a sign of life (src/worker/step-attempts.ts): a started try that
 * heartbeat since it started, within two minutes. Temporal's times come as protobuf
 * Timestamps whose seconds are Long objects.
 */
import { msNumberToTs } from '@temporalio/common/lib/time';
import { describe, expect, it } from 'vitest';
import { msOf, outlastedItsTime, showsLife, SIGN_OF_LIFE_MS } from '../../src/worker/step-attempts';

const NOW = Date.parse('2026-12-06T21:00:00Z');
// As the SDK makes them: seconds as a Long.
const at = (ms: number) => msNumberToTs(ms);
const STARTED = 2;
const SCHEDULED = 1;

describe('msOf', () => {
  it('reads a Timestamp whose seconds are a Long, a number, or absent', () => {
    expect(msOf(at(NOW + 250))).toBe(NOW + 250);
    expect(msOf({ seconds: 1_765_000_000, nanos: 5e8 })).toBe(1_765_000_000_500);
    expect(msOf(null)).toBe(0);
  });
});

describe('showsLife', () => {
  it('is a started try with a heartbeat since it started, within the window', () => {
    expect(showsLife({ state: STARTED, lastStartedTime: at(NOW - 60_000), lastHeartbeatTime: at(NOW - 2_000) }, NOW)).toBe(true);
  });

  it('is not a try waiting to start, one started without a heartbeat since, nor one silent past the window', () => {
    expect(showsLife({ state: SCHEDULED, lastStartedTime: at(NOW - 60_000), lastHeartbeatTime: at(NOW - 2_000) }, NOW)).toBe(false);
    // The heartbeat is an earlier try's.
    expect(showsLife({ state: STARTED, lastStartedTime: at(NOW - 1_000), lastHeartbeatTime: at(NOW - 20_000) }, NOW)).toBe(false);
    expect(showsLife({ state: STARTED, lastStartedTime: at(NOW - 60_000) }, NOW)).toBe(false);
    expect(showsLife({ state: STARTED, lastStartedTime: at(NOW - 10 * 60_000), lastHeartbeatTime: at(NOW - SIGN_OF_LIFE_MS) }, NOW)).toBe(false);
  });
});

describe('outlastedItsTime', () => {
  it('is a start-to-close timeout, also wrapped; not a heartbeat timeout nor an error', () => {
    expect(outlastedItsTime({ message: 'activity StartToClose timeout', timeoutFailureInfo: { timeoutType: 1 } })).toBe(true);
    expect(outlastedItsTime({ message: 'activity timeout', cause: { timeoutFailureInfo: { timeoutType: 1 } } })).toBe(true);
    expect(outlastedItsTime({ message: 'activity Heartbeat timeout', timeoutFailureInfo: { timeoutType: 4 } })).toBe(false);
    expect(outlastedItsTime({ message: 'connection refused', applicationFailureInfo: { type: 'Error' } })).toBe(false);
  });
});
