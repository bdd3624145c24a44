/**
 * `hunt start` starts its worker while ingest and the embedded stack already run: a part that
 * dies while the worker waits for Temporal gives that wait up, so the command stops, naming
 * the part, instead of waiting for ever.
 */
import { describe, expect, it } from 'vitest';
import { startWatchingParts } from '../../src/cli/stop';

class GivenUp extends Error {}
const isGivenUp = (err: unknown) => err instanceof GivenUp;
/** A start that waits for ever, unless given up. */
const waitsForEver = (signal: AbortSignal) => new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(new GivenUp())));
const never = new Promise<never>(() => undefined);

describe('startWatchingParts', () => {
  it('gives the start up when a running part dies, and says which', async () => {
    const gone = new Error('the embedded temporal (pid 42) is no longer running');
    const dies = new Promise<never>((_, reject) => setTimeout(() => reject(gone), 20));
    expect(await startWatchingParts(waitsForEver, [never, dies], new AbortController().signal, isGivenUp)).toEqual({ started: undefined, died: gone });
  });

  it('gives it up on the signal (Ctrl-C), with no part to blame', async () => {
    const signal = new AbortController();
    setTimeout(() => signal.abort(), 20);
    expect(await startWatchingParts(waitsForEver, [never], signal.signal, isGivenUp)).toEqual({ started: undefined, died: undefined });
  });

  it('returns what started; a failure of the start itself is thrown', async () => {
    expect(await startWatchingParts(async () => 'worker', [never], new AbortController().signal, isGivenUp)).toEqual({ started: 'worker', died: undefined });
    await expect(startWatchingParts(() => Promise.reject(new Error('bundle failed')), [never], new AbortController().signal, isGivenUp)).rejects.toThrow('bundle failed');
  });
});
