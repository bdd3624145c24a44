import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstGroup, groupsOf, splitIntoLanes, type SizedHunt } from '../../src/store/hunt-groups';

const hunts = (...events: number[]): SizedHunt[] => events.map((count, i) => ({ huntId: `h${i}`, events: count }));
const sizedHunts = fc.array(fc.integer({ min: 1, max: 1000 }), { maxLength: 40 }).map((counts) => hunts(...counts));

describe('firstGroup', () => {
  it('takes hunts in order while their events stay within the limit', () => {
    expect(firstGroup(hunts(100, 200, 300, 400), 10, 600).map((h) => h.huntId)).toEqual(['h0', 'h1', 'h2']);
    expect(firstGroup(hunts(100, 200, 300, 400), 10, 599).map((h) => h.huntId)).toEqual(['h0', 'h1']);
  });

  it('takes one hunt bigger than the limit on its own', () => {
    expect(firstGroup(hunts(5000, 1), 10, 600).map((h) => h.huntId)).toEqual(['h0']);
  });

  it('stops at the most hunts allowed', () => {
    expect(firstGroup(hunts(1, 1, 1), 2, 600).map((h) => h.huntId)).toEqual(['h0', 'h1']);
  });

  it('is the first group groupsOf makes', async () => {
    await fc.assert(
      fc.asyncProperty(sizedHunts, fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 5000 }), async (all, maxHunts, maxEvents) => {
        const groups: SizedHunt[][] = [];
        for await (const group of groupsOf(all, maxHunts, maxEvents)) groups.push(group);
        expect(firstGroup(all, maxHunts, maxEvents)).toEqual(groups[0] ?? []);
        expect(groups.flat()).toEqual(all);
      }),
    );
  });

  it('is a non-empty prefix within the limit, or the first hunt alone', () => {
    fc.assert(
      fc.property(sizedHunts, fc.integer({ min: 1, max: 5000 }), (all, limit) => {
        const chunk = firstGroup(all, all.length, limit);
        expect(chunk).toEqual(all.slice(0, chunk.length));
        if (all.length > 0) expect(chunk.length).toBeGreaterThan(0);
        const events = chunk.reduce((sum, h) => sum + h.events, 0);
        if (chunk.length > 1) expect(events).toBeLessThanOrEqual(limit);
        const next = all[chunk.length];
        if (next) expect(events + next.events).toBeGreaterThan(limit);
      }),
    );
  });
});

describe('splitIntoLanes', () => {
  it('splits equal hunts evenly', () => {
    expect(splitIntoLanes(hunts(1, 1, 1, 1), 2)).toEqual([['h0', 'h1'], ['h2', 'h3']]);
    expect(splitIntoLanes(hunts(1, 1, 1, 1, 1, 1), 3)).toEqual([['h0', 'h1'], ['h2', 'h3'], ['h4', 'h5']]);
  });

  it('gives a big hunt a lane of its own, wherever it is', () => {
    expect(splitIntoLanes(hunts(10, 1, 1, 1), 2)).toEqual([['h0'], ['h1', 'h2', 'h3']]);
    expect(splitIntoLanes(hunts(1, 1, 1, 10), 2)).toEqual([['h0', 'h1', 'h2'], ['h3']]);
  });

  it('uses fewer lanes than hunts allow, never an empty one', () => {
    expect(splitIntoLanes(hunts(5), 2)).toEqual([['h0']]);
    expect(splitIntoLanes([], 2)).toEqual([]);
  });

  it('keeps every hunt once, in order, in at most `lanes` non-empty runs', () => {
    fc.assert(
      fc.property(sizedHunts, fc.integer({ min: 1, max: 4 }), (all, lanes) => {
        const runs = splitIntoLanes(all, lanes);
        expect(runs.flat()).toEqual(all.map((h) => h.huntId));
        expect(runs.length).toBeLessThanOrEqual(lanes);
        for (const run of runs) expect(run.length).toBeGreaterThan(0);
      }),
    );
  });

  it('leaves no lane further from an even share than its biggest hunt', () => {
    fc.assert(
      fc.property(sizedHunts, fc.integer({ min: 1, max: 4 }), (all, lanes) => {
        const total = all.reduce((sum, h) => sum + h.events, 0);
        const biggest = Math.max(0, ...all.map((h) => h.events));
        const size = new Map(all.map((h) => [h.huntId, h.events]));
        const runs = splitIntoLanes(all, lanes);
        if (runs.length < Math.min(lanes, all.length)) return; // fewer runs: checked by the examples above
        for (const run of runs) {
          const events = run.reduce((sum, id) => sum + size.get(id)!, 0);
          expect(Math.abs(events - total / lanes)).toBeLessThanOrEqual(biggest);
        }
      }),
    );
  });
});
