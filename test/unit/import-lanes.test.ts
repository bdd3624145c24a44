import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitByHunt } from '../../src/backfill/import-records';
import { parseOccurredAt } from '../../src/events/schema';
import type { AcceptedEvent } from '../../src/store/apply-events';
import { atSecond, clueFound } from '../helpers/event-builders';

const accepted = (huntId: string, n: number): AcceptedEvent => {
  const event = clueFound({ eventId: `e${n}`, huntId, clueId: `c${n}`, occurredAt: atSecond(n) });
  return { event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' };
};

describe('splitByHunt', () => {
  it('puts each hunt in exactly one lane, keeps the order of events, and loses none', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('h1', 'h2', 'h3', 'hunt-4', 'x'), { maxLength: 60 }), fc.integer({ min: 1, max: 4 }), (hunts, lanes) => {
        const events = hunts.map((h, i) => accepted(h, i));
        const groups = splitByHunt(events, lanes);
        expect(groups.length).toBeGreaterThanOrEqual(1);
        expect(groups.length).toBeLessThanOrEqual(lanes);
        expect(groups.flat().map((e) => e.event.eventId).sort()).toEqual(events.map((e) => e.event.eventId).sort());
        for (const group of groups) {
          const order = group.map((e) => Number(e.event.eventId.slice(1)));
          expect(order).toEqual([...order].sort((a, b) => a - b));
        }
        const laneOf = new Map<string, number>();
        groups.forEach((group, lane) =>
          group.forEach((e) => {
            expect(laneOf.get(e.event.huntId) ?? lane).toBe(lane);
            laneOf.set(e.event.huntId, lane);
          }),
        );
      }),
    );
  });

  it('with one lane, returns the events as they are', () => {
    const events = [accepted('a', 1), accepted('b', 2)];
    expect(splitByHunt(events, 1)).toEqual([events]);
  });
});
