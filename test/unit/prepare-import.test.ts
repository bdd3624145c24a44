/**
 * prepareImport classifies a chunk in steps (the event loop turns between them); the chunk it
 * prepares must be the one a single pass would: every accepted row in file order with its
 * origin, every reject in order, repeats and the hunt filter judged over the whole chunk, each
 * row in its hunt's lane.
 */
import { describe, expect, it } from 'vitest';
import { prepareImport, type ImportOptions, type ImportOrigin } from '../../src/batch/backfill/import-records';
import { RecentEventIds } from '../../src/batch/backfill/recent-event-ids';
import { classifySlice } from '../../src/pipeline/classify';
import { eventIdAt, laneOfHunt, rowAt, rowCount, type EventRows } from '../../src/store/hot-path/event-rows';
import { clueFound } from '../helpers/event-builders';

const origin: ImportOrigin = { topic: 'file:steps.ndjson', partition: 0, sourceLabel: 'backfill:steps' };
const now = new Date();
const options: ImportOptions = { dryRun: false, groupId: 'backfill:steps', lanes: 1, now };

/**
 * 2,500 records over three steps: every 97th is broken, every 89th resends the eventId of the
 * record 1,000 before it, under that record's hunt (a client's resend) or, across hunts, under
 * a hunt of its own (a client reusing an eventId).
 */
function records(resends: 'in the same hunt' | 'across hunts' = 'in the same hunt') {
  return Array.from({ length: 2500 }, (_, i) => {
    const resend = i % 89 === 0 && i >= 1000;
    const eventId = resend ? `e-${i - 1000}` : `e-${i}`;
    const huntId = resend && resends === 'in the same hunt' ? `hunt-${(i - 1000) % 7}` : `hunt-${i % 7}`;
    const json = i % 97 === 0 ? '{"eventId": "broken' : JSON.stringify(clueFound({ eventId, huntId, playerId: `p${i}`, clueId: `c${i}`, occurredAt: new Date(now.getTime() - 60_000).toISOString() }));
    return { offset: String(i + 1), key: null, value: Buffer.from(json), timestamp: '0' };
  });
}

describe('prepareImport with a hunt filter', () => {
  it("leaves out another hunt's rejects too (a DLQ replay would import them), keeping those whose hunt cannot be read", async () => {
    const at = new Date(now.getTime() - 60_000).toISOString();
    const future = new Date(now.getTime() + 3_600_000).toISOString();
    const line = (offset: number, json: string, key: string | null = null) => ({ offset: String(offset), key: key === null ? null : Buffer.from(key), value: Buffer.from(json), timestamp: '0' });
    const input = [
      line(1, JSON.stringify(clueFound({ eventId: 'a', huntId: 'h1', occurredAt: at }))),
      line(2, JSON.stringify(clueFound({ eventId: 'b', huntId: 'h2', occurredAt: future }))), // h2's, rejected
      line(3, JSON.stringify(clueFound({ eventId: 'c', huntId: 'h1', occurredAt: future }))), // h1's, rejected
      line(4, '{"eventId": "broken'), // nobody's to say
      line(5, '{"eventId": "broken too', 'h2'), // h2's, by its key
    ];
    const prepared = await prepareImport(origin, input, { ...options, huntId: 'h1' });
    expect(prepared.rejected.map((r) => [r.offset, r.reason])).toEqual([
      ['3', 'future_timestamp'],
      ['4', 'invalid_json'],
    ]);
    expect(prepared.counts).toMatchObject({ records: 5, rejected: 2, filteredOut: 2 });
    expect((await prepareImport(origin, input, options)).rejected).toHaveLength(4);
  });
});

describe('prepareImport, over a chunk of several classification steps', () => {
  it('keeps every row, origin and reject of a single pass, in file order, and lists the repeats across steps', async () => {
    const input = records();
    const prepared = await prepareImport(origin, input, options);
    const whole = classifySlice(origin.topic, origin.partition, input, now, origin.sourceLabel);
    const lane = prepared.lanes[0]!;
    // One lane: every repeat is in the lane of its first copy, so it stays, listed.
    expect(prepared.whole).toBe(false);
    const single = Array.from({ length: rowCount(whole.rows) }, (_, i) => ({ offset: whole.origins.at(i).offset, row: rowAt(whole.rows, i) }));
    const stepped = Array.from({ length: rowCount(lane.rows) }, (_, i) => ({ offset: lane.origins.at(i).offset, row: rowAt(lane.rows, i) }));
    expect(stepped).toEqual(single);
    expect(lane.repeatsInLane).toEqual(repeatPositions(lane.rows));
    expect(lane.repeatsInLane.length).toBe(input.filter((_, i) => i % 89 === 0 && i >= 1000 && (i - 1000) % 97 !== 0).length);
    expect(prepared.rejected.map((r) => [r.offset, r.reason])).toEqual(whole.rejected.map((r) => [r.offset, r.reason]));
    expect(prepared.counts).toMatchObject({ records: 2500, rejected: whole.rejected.length, filteredOut: 0 });
    expect(prepared.eventIds.size).toBe(rowCount(lane.rows) - lane.repeatsInLane.length);
  });

  it('splits the steps into lanes by hunt, each row under its own hunt, and filters by hunt over every step', async () => {
    const input = records();
    const lanes = await prepareImport(origin, input, { ...options, lanes: 2 });
    const single = await prepareImport(origin, input, options);
    // Every row is in a lane; a repeat, in its first copy's lane, is listed.
    expect(lanes.whole).toBe(false);
    expect(lanes.lanes.reduce((n, l) => n + rowCount(l.rows), 0)).toBe(rowCount(single.lanes[0]!.rows));
    expect(lanes.lanes.every((l) => l.repeatsInLane.length > 0)).toBe(true);
    for (const [lane, { rows, repeatsInLane }] of lanes.lanes.entries()) {
      expect(repeatsInLane).toEqual(repeatPositions(rows));
      expect(rowCount(rows)).toBeGreaterThan(0);
      for (let i = 0; i < rowCount(rows); i++) {
        // The hunt each row is filed under is the hunt in its own JSON, and one of this lane's.
        const hunt = rows.huntIds[rows.huntOf[i] as number] as string;
        expect(JSON.parse(rowAt(rows, i)).h).toBe(hunt);
        expect(laneOfHunt(hunt, 2)).toBe(lane);
        expect(lanes.eventIds.get(eventIdAt(rows, i))).toBe(lane);
      }
    }
    const oneHunt = await prepareImport(origin, input, { ...options, lanes: 2, huntId: 'hunt-3' });
    const kept = oneHunt.lanes.flatMap(({ rows }) => Array.from({ length: rowCount(rows) }, (_, i) => rows.huntIds[rows.huntOf[i] as number]));
    expect(new Set(kept)).toEqual(new Set(['hunt-3']));
    expect(kept.length + oneHunt.counts.filteredOut).toBe(rowCount(single.lanes[0]!.rows));
    expect(oneHunt.eventIds.size).toBe(kept.length - oneHunt.lanes.reduce((n, l) => n + l.repeatsInLane.length, 0));
  });

  it('lists, per lane, the rows repeating an eventId an earlier chunk holds in that lane, and remembers its own', async () => {
    const earlierChunks = new RecentEventIds();
    const input = records();
    const twoLanes = { ...options, lanes: 2, earlierChunks };
    const first = await prepareImport(origin, input.slice(0, 1200), twoLanes);
    const second = await prepareImport(origin, input.slice(1200), twoLanes);
    const whole = await prepareImport(origin, input, { ...options, lanes: 2 });
    const ofFirstInSameLane = second.lanes.map(({ rows }, lane) => {
      const firstIds = [...first.eventIds].filter(([, l]) => l === lane).map(([id]) => id);
      return repeatPositions(rows, firstIds);
    });
    expect(second.lanes.map((l) => l.repeatsInLane)).toEqual(ofFirstInSameLane);
    expect(ofFirstInSameLane.flat().length).toBeGreaterThan(repeatPositions(second.lanes[0]!.rows).length + repeatPositions(second.lanes[1]!.rows).length);
    for (const [id, lane] of whole.eventIds) expect(earlierChunks.laneOf(id)).toBe(lane);
  });

  it('keeps a chunk with an eventId under hunts of two lanes whole: every row in one lane, in file order, none left out', async () => {
    const input = records('across hunts');
    const whole = await prepareImport(origin, input, { ...options, lanes: 2 });
    const single = await prepareImport(origin, input, options);
    expect(whole.whole).toBe(true);
    expect(whole.lanes).toHaveLength(1);
    const rowsOf = ({ rows, origins }: (typeof whole.lanes)[number]) => Array.from({ length: rowCount(rows) }, (_, i) => ({ offset: origins.at(i).offset, row: rowAt(rows, i) }));
    expect(rowsOf(whole.lanes[0]!)).toEqual(rowsOf(single.lanes[0]!));
    // It commits the ordinary way: nothing for a plain insert to leave out.
    expect(whole.lanes[0]!.repeatsInLane).toEqual([]);
    // Its eventIds keep the lane of their first copy's hunt, for the chunks after it.
    const firstHunt = new Map<string, string>();
    for (let i = 0; i < rowCount(single.lanes[0]!.rows); i++) {
      const rows = single.lanes[0]!.rows;
      if (!firstHunt.has(eventIdAt(rows, i))) firstHunt.set(eventIdAt(rows, i), rows.huntIds[rows.huntOf[i] as number] as string);
    }
    expect([...whole.eventIds]).toEqual([...firstHunt].map(([id, hunt]) => [id, laneOfHunt(hunt, 2)]));
    expect(whole.counts).toMatchObject(single.counts);
    // Judged over the hunts the job imports: one hunt alone never holds an eventId in two lanes.
    const oneHunt = await prepareImport(origin, input, { ...options, lanes: 2, huntId: 'hunt-3' });
    expect(oneHunt.whole).toBe(false);
    const kept = oneHunt.lanes.flatMap(({ rows }) => Array.from({ length: rowCount(rows) }, (_, i) => rows.huntIds[rows.huntOf[i] as number]));
    expect(new Set(kept)).toEqual(new Set(['hunt-3']));
  });
});

/** The positions of the rows whose eventId an earlier row holds, or one of `before`. */
function repeatPositions(rows: EventRows, before: readonly string[] = []): number[] {
  const seen = new Set(before);
  const positions: number[] = [];
  for (let i = 0; i < rowCount(rows); i++) {
    const id = eventIdAt(rows, i);
    if (seen.has(id)) positions.push(i);
    else seen.add(id);
  }
  return positions;
}
