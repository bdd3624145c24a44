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

  it("drops a group's answers begun before a time, those still being made too, and keeps the others", async () => {
    // Told just before a push is written, with when its read began: a client that saw the
    // push and asks again is not answered from before it.
    const cache = new ReplyCache(60_000);
    await cache.get('a\n10', async () => reply('a before'), 'a');
    await cache.get('b\n10', async () => reply('b before'), 'b');
    let release: (r: CachedReply) => void = () => undefined;
    const slow = cache.get('a\n50', () => new Promise<CachedReply>((resolve) => (release = resolve)), 'a');
    await new Promise((resolve) => setTimeout(resolve, 2));
    const pushedReadBegan = performance.now();
    await cache.get('a\n100', async () => reply('a100 begun after'), 'a');
    cache.invalidate(['a'], pushedReadBegan);
    expect((await cache.get('a\n10', async () => reply('a after'), 'a')).body).toBe('a after');
    // A query begun before the pushed read is not shared with requests after it; its own waiters keep it.
    expect((await Promise.race([cache.get('a\n50', async () => reply('a50 after'), 'a'), slow])).body).toBe('a50 after');
    release(reply('a50 before'));
    expect((await slow).body).toBe('a50 before');
    expect((await cache.get('a\n50', async () => reply('again'), 'a')).body).toBe('a50 after');
    // One begun after it is as new as the push, and stays shared.
    expect((await cache.get('a\n100', async () => reply('again'), 'a')).body).toBe('a100 begun after');
    expect((await cache.get('b\n10', async () => reply('b after'), 'b')).body).toBe('b before');
  });

  it('lets answers go when they expire, not when the map fills', async () => {
    const cache = new ReplyCache(30);
    for (let limit = 1; limit <= 100; limit++) await cache.get(`h\n${limit}`, async () => reply('x'.repeat(1000)));
    expect(cache.size).toEqual({ entries: 100, bytes: 100_000 });
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(cache.size).toEqual({ entries: 0, bytes: 0 });
  });

  it('is cleared past its byte budget', async () => {
    const cache = new ReplyCache(60_000, 10_000, 5_000);
    for (const key of ['a', 'b', 'c', 'd', 'e', 'f']) await cache.get(key, async () => reply('x'.repeat(1000)));
    expect(cache.size).toEqual({ entries: 1, bytes: 1000 });
  });

  it('stays bounded whatever keys clients send', async () => {
    const cache = new ReplyCache(60_000, 3);
    for (const key of ['a', 'b', 'c', 'd']) await cache.get(key, async () => reply(key));
    expect((await cache.get('a', async () => reply('a again'))).body).toBe('a again');
  });
});
