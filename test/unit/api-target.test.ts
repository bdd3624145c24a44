import { describe, expect, it } from 'vitest';
import { parseTarget } from '../../src/api/server';

function statusOf(target: string): number | undefined {
  try {
    parseTarget(target);
    return undefined;
  } catch (err) {
    return (err as { status?: number }).status;
  }
}

describe('parseTarget', () => {
  it('splits and decodes the path and the query', () => {
    const { pathname, parts, query } = parseTarget('/hunts/a%2Eb/leaderboard?limit=5');
    expect(pathname).toBe('/hunts/a%2Eb/leaderboard');
    expect(parts).toEqual(['hunts', 'a.b', 'leaderboard']);
    expect(query.get('limit')).toBe('5');
  });

  it.each([
    ['/hunts/%E0%A4%A/leaderboard', 400],
    ['/hunts/%/leaderboard', 400],
    ['/hunts/%C0%AF/leaderboard', 400],
    ['/hunts/x/leaderboard?limit=%ZZ', 400],
    ['/hunts/x/leaderboard?limit=1&limit=2', 400],
    ['http://example.com/hunts/x/leaderboard', 400],
    ['*', 400],
    [`/${'a'.repeat(5000)}`, 414],
  ])('refuses %j with %i, never a 500', (target, status) => {
    expect(statusOf(target)).toBe(status);
  });
});

describe('routeLabel', () => {
  it('names a fixed few routes, whatever the path', async () => {
    const { routeLabel } = await import('../../src/api/api-metrics');
    expect(routeLabel('/hunts/h/leaderboard?limit=5')).toBe('leaderboard');
    expect(routeLabel('/hunts/h/players/p')).toBe('player');
    expect(routeLabel('/readyz')).toBe('readyz');
    expect(routeLabel(`/${'x'.repeat(50)}`)).toBe('other');
    expect(routeLabel(undefined)).toBe('other');
  });

  it('splits and decodes the path as the router does', async () => {
    const { routeLabel } = await import('../../src/api/api-metrics');
    expect(routeLabel('//hunts/h/leaderboard/stream')).toBe('stream');
    expect(routeLabel('/hunts/h/leaderboard/%73tream?limit=3')).toBe('stream');
    expect(routeLabel('/hunts/h/')).toBe('page');
    expect(routeLabel('/hunts/%ZZ/leaderboard')).toBe('other'); // a 400
    expect(routeLabel('/hunts/h/leaderboard/stream/more')).toBe('other');
  });
});
