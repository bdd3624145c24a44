/**
 * Which pending steps show a sign of life (src/worker/step-attempts.ts): a started try that
 * heartbeat since it started, within two minutes. Temporal's times come as protobuf
 * Timestamps whose seconds are Long objects.
 */
import { msNumberToTs } from '@temporalio/common/lib/time';
import { describe, expect, it } from 'vitest';
import { counts, CRASH_LOOP_WINDOW_MS, LOGGED_FROM_ENDED, msOf, showsLife, SIGN_OF_LIFE_MS } from '../../src/worker/step-attempts';

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

describe('counts', () => {
  const heartbeating = { state: STARTED, lastStartedTime: at(NOW - 60_000), lastHeartbeatTime: at(NOW - 2_000) };
  const silent = { state: STARTED, lastStartedTime: at(NOW - 60_000) };
  const outlasted = { message: 'activity StartToClose timeout', timeoutFailureInfo: { timeoutType: 1 } };
  const wentSilent = { message: 'activity Heartbeat timeout', timeoutFailureInfo: { timeoutType: 4 } };
  const error = { message: 'connection refused', applicationFailureInfo: { type: 'Error' } };
  const tried = (ended: number) => ({ attempt: ended + 1 });

  it('counts no first try, whatever it shows', () => {
    expect(counts({ ...silent, attempt: 1 }, NOW)).toBe(false);
    expect(counts({ ...silent, ...tried(2) }, NOW)).toBe(false); // no failure recorded
  });

  it('counts a step tried before whose current try shows no sign of life, however its last ended', () => {
    for (const lastFailure of [outlasted, wentSilent, error]) expect(counts({ ...silent, ...tried(1), lastFailure }, NOW)).toBe(true);
  });

  it('counts a step whose last try outlasted its time, also wrapped, even while it heartbeats', () => {
    expect(counts({ ...heartbeating, ...tried(1), lastFailure: outlasted }, NOW)).toBe(true);
    expect(counts({ ...heartbeating, ...tried(1), lastFailure: { message: 'activity timeout', cause: outlasted } }, NOW)).toBe(true);
  });

  it('counts a heartbeating step whose worker went silent under its last try once enough tries have ended, while the try is young', () => {
    // A worker that dies under the step, again and again: it heartbeats until it dies.
    expect(counts({ ...heartbeating, ...tried(LOGGED_FROM_ENDED), lastFailure: wentSilent }, NOW)).toBe(true);
    expect(counts({ ...heartbeating, ...tried(LOGGED_FROM_ENDED), lastFailure: { message: 'activity timeout', cause: wentSilent } }, NOW)).toBe(true);
    // Once or twice is a worker lost and a step getting on.
    expect(counts({ ...heartbeating, ...tried(LOGGED_FROM_ENDED - 1), lastFailure: wentSilent }, NOW)).toBe(false);
    // A try that has outlived the window is getting on too (a long step after three lost workers).
    const old = { state: STARTED, lastStartedTime: at(NOW - CRASH_LOOP_WINDOW_MS), lastHeartbeatTime: at(NOW - 2_000) };
    expect(counts({ ...old, ...tried(LOGGED_FROM_ENDED + 5), lastFailure: wentSilent }, NOW)).toBe(false);
  });

  it('does not count a heartbeating step whose earlier tries failed with an error: HuntJobRetrying sees those', () => {
    expect(counts({ ...heartbeating, ...tried(10), lastFailure: error }, NOW)).toBe(false);
  });
});
