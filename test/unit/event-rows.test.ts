import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatRows, eventIdAt, eventRow, groupRowsByHunt, laneOfHunt, rowAt, rowCount, rowsOf, sliceRows, withOwnHunts, type EventRows } from '../../src/store/hot-path/event-rows';
import { atSecond, clueFound, joined } from '../helpers/event-builders';

const eventOf = (huntId: string, n: number) => clueFound({ eventId: `e${n}`, huntId, clueId: `c${n}`, occurredAt: atSecond(n) });
const rowsFor = (hunts: string[], from = 0) => rowsOf(hunts.map((h, i) => ({ event: eventOf(h, from + i), source: 'test' })));
const idsOf = (rows: EventRows) => Array.from({ length: rowCount(rows) }, (_, i) => (JSON.parse(rowAt(rows, i)) as { e: string }).e);
const huntsArb = fc.array(fc.constantFrom('h1', 'h2', 'h3', 'hunt-4', 'x', '__proto__'), { maxLength: 60 });

describe('event rows', () => {
  it('give each row\'s eventId from its front, whatever characters it holds', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 64 }), { minLength: 1, maxLength: 20 }), (ids) => {
        const rows = rowsOf(ids.map((eventId, i) => ({ event: { ...eventOf('h', i), eventId }, source: 'test' })));
        expect(Array.from({ length: rowCount(rows) }, (_, i) => eventIdAt(rows, i))).toEqual(ids);
      }),
    );
    const tricky = ['a"b', 'back\\slash"', '","h":"x', '\u2028😀\t'];
    const rows = rowsOf(tricky.map((eventId, i) => ({ event: { ...eventOf('h', i), eventId }, source: 'test' })));
    expect(tricky.map((_, i) => eventIdAt(rows, i))).toEqual(tricky);
  });

  it('flatten a payload to typed fields and keep the provenance', () => {
    expect(JSON.parse(eventRow(joined({ eventId: 'j', displayName: 'Ann', teamId: 'red' }), 'kafka:t:0:5'))).toEqual({
      e: 'j', h: 'h1', p: 'p1', t: 'player.joined', o: atSecond(0), d: 'Ann', m: 'red', src: 'kafka:t:0:5',
    });
  });

  it('narrow a slice\'s hunts to those its rows hold, each row keeping its hunt', () => {
    fc.assert(
      fc.property(huntsArb, fc.nat(), fc.nat(), (hunts, a, b) => {
        const rows = rowsFor(hunts);
        const [from, to] = [a % (hunts.length + 1), b % (hunts.length + 1)].sort((x, y) => x - y) as [number, number];
        const part = withOwnHunts(sliceRows(rows, from, to));
        const huntOfRow = (r: EventRows, i: number) => r.huntIds[r.huntOf[i] as number];
        expect(Array.from({ length: rowCount(part) }, (_, i) => huntOfRow(part, i))).toEqual(hunts.slice(from, to));
        expect([...part.huntIds].sort()).toEqual([...new Set(hunts.slice(from, to))].sort());
        expect(idsOf(part)).toEqual(idsOf(sliceRows(rows, from, to)));
      }),
    );
  });

  it('slice and concatenate without losing or reordering a row, whatever the cut', () => {
    fc.assert(
      fc.property(huntsArb, fc.nat(), fc.nat(), (hunts, a, b) => {
        const rows = rowsFor(hunts);
        const [from, to] = [a % (hunts.length + 1), b % (hunts.length + 1)].sort((x, y) => x - y) as [number, number];
        const parts = [sliceRows(rows, 0, from), sliceRows(rows, from, to), sliceRows(rows, to, hunts.length)];
        expect(parts.map(rowCount)).toEqual([from, to - from, hunts.length - to]);
        const joined = concatRows(parts);
        expect(idsOf(joined)).toEqual(idsOf(rows));
        expect(joined.json).toBe(rows.json);
        expect(JSON.parse(`[${joined.json}]`)).toHaveLength(hunts.length);
        for (let i = 0; i < rowCount(joined); i++) expect(joined.huntIds[joined.huntOf[i] as number]).toBe(hunts[i]);
      }),
    );
  });

  it('group by hunt: each hunt in exactly one lane, rows in order, none lost, filtered hunts left out', () => {
    fc.assert(
      fc.property(huntsArb, fc.integer({ min: 1, max: 4 }), (hunts, lanes) => {
        const rows = rowsFor(hunts);
        const groups = groupRowsByHunt(rows, lanes, (h) => (h === 'x' ? -1 : laneOfHunt(h, lanes)));
        expect(groups).toHaveLength(lanes);
        expect(groups.flatMap((g) => g.taken).sort((a, b) => a - b)).toEqual(hunts.flatMap((h, i) => (h === 'x' ? [] : [i])));
        const laneOf = new Map<string, number>();
        groups.forEach((group, lane) => {
          expect(group.taken).toEqual([...group.taken].sort((a, b) => a - b));
          expect(idsOf(group.rows)).toEqual(group.taken.map((i) => `e${i}`));
          for (const i of group.taken) {
            const hunt = hunts[i] as string;
            expect(laneOf.get(hunt) ?? lane).toBe(lane);
            laneOf.set(hunt, lane);
          }
        });
      }),
    );
  });
});
