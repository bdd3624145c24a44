import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KnownEvents, PAUSE_AFTER_CONFLICT, PlainInsertPause, siftKnownEvents } from '../../src/ingest/known-events';
import { leaveOutMask } from '../../src/store/hot-path/apply-events';
import { rowsOf } from '../../src/store/hot-path/event-rows';
import { atSecond, clueFound } from '../helpers/event-builders';

const onP0 = () => 0;
const rowsWithIds = (ids: readonly string[]) => rowsOf(ids.map((eventId, i) => ({ event: clueFound({ eventId, occurredAt: atSecond(i) }), source: 'test' })));

describe('the memory of stored eventIds', () => {
  it('finds the rows that repeat an earlier row of the batch or an eventId it remembers', () => {
    const known = new KnownEvents(10);
    known.remember(rowsWithIds(['old-1', 'old-2']), [], onP0);
    expect(siftKnownEvents(rowsWithIds(['a', 'old-2', 'b', 'a', 'c', 'b', 'b', 'old-1']), known, onP0)).toEqual([1, 3, 5, 6, 7]);
    expect(siftKnownEvents(rowsWithIds(['x', 'y']), known, onP0)).toEqual([]);
  });

  it('leaves out a repeat of a stored eventId only when it comes from the partition that stored it; repeats within the batch whatever their partitions', () => {
    const known = new KnownEvents(10);
    known.remember(rowsWithIds(['on-1', 'on-2']), [], (row) => row + 1);
    const partitions = [1, 2, 2, 1, 3, 5];
    // on-1 stored from partition 1, on-2 from 2: rows 0 and 2 repeat them from their partitions, rows 1 and 3 from others.
    expect(siftKnownEvents(rowsWithIds(['on-1', 'on-1', 'on-2', 'on-2', 'x', 'x']), known, (row) => partitions[row] as number)).toEqual([0, 2, 5]);
  });

  it('tells escaped eventIds apart', () => {
    const known = new KnownEvents(10);
    known.remember(rowsWithIds(['a"b', 'back\\slash']), [], onP0);
    expect(siftKnownEvents(rowsWithIds(['a"b', 'a\\"b', 'back\\slash', 'back\\\\slash', 'a\\"b']), known, onP0)).toEqual([0, 2, 4]);
  });

  it('remembers the rows of a batch but those it was told are repeats', () => {
    const known = new KnownEvents(10);
    known.remember(rowsWithIds(['a', 'b', 'c', 'd']), [1, 3], onP0);
    expect(['a', 'b', 'c', 'd'].map((id) => known.has(id, 0))).toEqual([true, false, true, false]);
  });

  it('holds the newest eventIds up to its capacity, forgetting the oldest first', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.integer({ min: 0, max: 30 }).map(String), { maxLength: 12 }), { maxLength: 12 }), fc.integer({ min: 1, max: 20 }), (batches, capacity) => {
        const known = new KnownEvents(capacity);
        // The model: every id added, in order; one still held is not added again.
        const added: string[] = [];
        const held = () => new Set(added.slice(-capacity));
        for (const ids of batches) {
          known.remember(rowsWithIds(ids), [], onP0);
          for (const id of ids) if (!held().has(id)) added.push(id);
        }
        for (const id of new Set(batches.flat())) expect(known.has(id, 0)).toBe(held().has(id));
      }),
    );
  });

  it('forgets everything when told to, and fills again from empty', () => {
    const known = new KnownEvents(3);
    known.remember(rowsWithIds(['a', 'b', 'c']), [], onP0);
    known.forget();
    expect(['a', 'b', 'c'].some((id) => known.has(id, 0))).toBe(false);
    known.remember(rowsWithIds(['d', 'e', 'f', 'g']), [], onP0);
    expect(['d', 'e', 'f', 'g'].map((id) => known.has(id, 0))).toEqual([false, true, true, true]);
  });

  it('pauses plain inserts for a while after a conflict, then allows them again', () => {
    const pause = new PlainInsertPause();
    expect(pause.take()).toBe(true);
    pause.conflicted();
    const answers = Array.from({ length: PAUSE_AFTER_CONFLICT + 2 }, () => pause.take());
    expect(answers.filter((a) => !a)).toHaveLength(PAUSE_AFTER_CONFLICT);
    expect(answers.slice(PAUSE_AFTER_CONFLICT)).toEqual([true, true]);
  });
});

describe('the rows a plain insert leaves out, as the statement reads them', () => {
  it('is a boolean array marking each, as long as the last one needs', () => {
    expect(leaveOutMask([])).toBe('{}');
    expect(leaveOutMask([0])).toBe('{t}');
    expect(leaveOutMask([1, 3])).toBe('{f,t,f,t}');
    expect(leaveOutMask([3, 1])).toBe('{f,t,f,t}');
  });
});
