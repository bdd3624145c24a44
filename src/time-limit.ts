/** A time limit on a promise, for waits that must end whatever the other side does. */

export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * `promise`, or a TimeoutError once `ms` have passed. The timer does not keep the process
 * alive, and the promise goes on (nothing here can stop it).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new TimeoutError(`no answer within ${ms} ms`)), ms).unref())]);
}
