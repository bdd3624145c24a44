import { describe, expect, it } from 'vitest';
import { ReplyCache, type CachedReply } from '../../src/api/reply-cache';

const reply = (body: string): CachedReply => ({ status: 200, body });

describe('ReplyCache', () => {
  it('shares one computation among requests that arrive while it runs', async () => {
    const cache = new ReplyCache(0);
    let calls = 0;
    let release: (r: CachedReply) => void = () => undefined;
    const compute = () => {
      calls++;
      return new Promise<CachedReply>((resolve) => (release = resolve));
    };
    const all = Promise.all([cache.get('k', compute), cache.get('k', compute), cache.get('k', compute)]);
    release(reply('a'));
    expect((await all).map((r) => r.body)).toEqual(['a', 'a', 'a']);
    expect(calls).toBe(1);
    // With no time to live, the next request computes afresh.
    expect((await cache.get('k', async () => reply('b'))).body).toBe('b');
  });

  it('reuses an answer for its time to live, and never a failure', async () => {
    const cache = new ReplyCache(60_000);
    await cache.get('k', async () => reply('first'));
    expect((await cache.get('k', async () => reply('second'))).body).toBe('first');
    await expect(cache.get('other', async () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect((await cache.get('other', async () => reply('up'))).body).toBe('up');
  });

  it('stays bounded whatever keys clients send', async () => {
    const cache = new ReplyCache(60_000, 3);
    for (const key of ['a', 'b', 'c', 'd']) await cache.get(key, async () => reply(key));
    expect((await cache.get('a', async () => reply('a again'))).body).toBe('a again');
  });
});
