/**
 * The file backfill's import pipeline (ImportPipeline) when one lane's commit fails on the real
 * Postgres: no chunk after the failed one is reported (its report is what heartbeats the
 * cursor, so a retry would resume past records never stored), a later chunk failing first is
 * no unhandled rejection (which ends the worker process), and nothing starts committing once
 * a failure is known. The failures are a trigger's deadlock error (40P01): an outage, retried
 * by the activity, not a record the database refuses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImportPipeline, prepareImport, type ImportCounts, type ImportOptions, type ImportOrigin, type PreparedChunk } from '../../src/batch/backfill/import-records';
import { RecentEventIds } from '../../src/batch/backfill/recent-event-ids';
import { laneOfHunt } from '../../src/store/hot-path/event-rows';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';

const db = useTestDatabase();
const LANES = 2;
const huntInLane = (lane: number, not: string[] = []) => Array.from({ length: 50 }, (_, i) => `hunt-${i}`).find((h) => laneOfHunt(h, LANES) === lane && !not.includes(h))!;
const slowHunt = huntInLane(1);
const steadyHunt = huntInLane(0);
const failingHunt = huntInLane(0, [steadyHunt]);
const origin: ImportOrigin = { topic: 'file:import-failure.ndjson', partition: 0, sourceLabel: 'backfill:import-failure' };
const options: ImportOptions = { dryRun: false, groupId: 'backfill:import-failure', lanes: LANES };

let line = 0;
/** A chunk of clue events, `perHunt` for each hunt given, as NDJSON lines of a file. */
function chunk(run: string, hunts: string[], perHunt = 5) {
  const records = hunts.flatMap((huntId) =>
    Array.from({ length: perHunt }, () => {
      line++;
      const event = clueFound({ eventId: `${run}-${line}`, huntId, playerId: `p${line}`, clueId: `c${line}` });
      return { offset: String(line), key: null, value: Buffer.from(JSON.stringify(event)), timestamp: '0' };
    }),
  );
  return prepareImport(origin, records, options);
}

/** Events of `run` the database holds, per hunt, in the order they were stored. */
async function storedOrder(run: string): Promise<Record<string, number[]>> {
  const { rows } = await db.pool.query<{ hunt_id: string; n: number }>(
    `SELECT hunt_id, split_part(event_id, '-', 2)::int AS n FROM events WHERE event_id LIKE $1 ORDER BY seq`,
    [`${run}-%`],
  );
  const byHunt: Record<string, number[]> = {};
  for (const r of rows) (byHunt[r.hunt_id] ??= []).push(r.n);
  return byHunt;
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  // Faults by hunt: a pause, then (if `fail`) a deadlock error, for each of the hunt's events.
  await db.pool.query(`CREATE TABLE import_faults (hunt_id text PRIMARY KEY, pause_s float8 NOT NULL, fail boolean NOT NULL)`);
  await db.pool.query(`CREATE FUNCTION import_fault() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE f import_faults;
    BEGIN
      SELECT * INTO f FROM import_faults WHERE hunt_id = NEW.hunt_id;
      IF FOUND THEN
        PERFORM pg_sleep(f.pause_s);
        IF f.fail THEN RAISE EXCEPTION 'deadlock detected (a test fault)' USING ERRCODE = '40P01'; END IF;
      END IF;
      RETURN NEW;
    END $$`);
  await db.pool.query('CREATE TRIGGER import_fault BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION import_fault()');
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});

/** Pushes the chunks in order, as the file backfill does; returns the chunks reported and the failure. */
async function importChunks(chunks: Promise<PreparedChunk>[]) {
  const pipeline = new ImportPipeline(db.pool, options);
  const reported: number[] = [];
  let failure: unknown;
  try {
    // Prepared before the first push, as they are small: one that failed would be this call's failure.
    for (const [i, c] of (await Promise.all(chunks)).entries()) await pipeline.push(c, (_counts: ImportCounts) => reported.push(i));
    await pipeline.drain();
  } catch (err) {
    failure = err;
  }
  await pipeline.settle();
  return { reported, failure };
}

describe('the file backfill, when a lane fails to commit', () => {
  it('reports no chunk after the failed one, and the retry from the last report stores every event in file order', async () => {
    // Chunk 0's lane-1 part fails after a pause, while lane 0 goes on with the next chunks.
    await db.pool.query(`INSERT INTO import_faults VALUES ($1, 0.5, true)`, [slowHunt]);
    const chunks = [chunk('a', [slowHunt, steadyHunt]), chunk('a', [steadyHunt]), chunk('a', [steadyHunt]), chunk('a', [steadyHunt])];
    const first = await importChunks(chunks);
    expect((first.failure as { code?: string }).code).toBe('40P01');
    // Chunk 0 is not wholly in, so no cursor may pass it.
    expect(first.reported).toEqual([]);
    // The lane that failed committed nothing after its failed part.
    expect((await storedOrder('a'))[slowHunt]).toBeUndefined();

    // The activity's retry resumes from the last report: here the file's start.
    await db.pool.query('DELETE FROM import_faults');
    const retry = await importChunks(chunks);
    expect(retry).toEqual({ reported: [0, 1, 2, 3], failure: undefined });
    const stored = await storedOrder('a');
    expect(stored[slowHunt]).toEqual([1, 2, 3, 4, 5]);
    expect(stored[steadyHunt]).toEqual([6, 7, 8, 9, 10, ...Array.from({ length: 15 }, (_, i) => 11 + i)]);
  });

  it('fails without an unhandled rejection when a later chunk fails before an earlier one has committed', async () => {
    // Chunk 0 is slow in lane 1; chunk 1 fails at once in lane 0, before chunk 0 has reported.
    await db.pool.query(`INSERT INTO import_faults VALUES ($1, 0.2, false), ($2, 0, true)`, [slowHunt, failingHunt]);
    const first = await importChunks([chunk('b', [slowHunt, steadyHunt]), chunk('b', [failingHunt]), chunk('b', [steadyHunt]), chunk('b', [steadyHunt])]);
    expect((first.failure as { code?: string }).code).toBe('40P01');
    // Chunk 0 committed whole and may report; chunk 1 did not, so nothing after it may.
    expect(first.reported).toEqual([0]);
    // Let a rejection nobody handled surface before looking.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(unhandled).toEqual([]);
    const stored = await storedOrder('b');
    expect(stored[failingHunt]).toBeUndefined();
    expect(stored[slowHunt]).toHaveLength(5);
  });
});

describe('the file backfill, when a lane fails while another holds an eventId a later chunk shares across lanes', () => {
  it('settles only once the other lane has finished committing', async () => {
    await db.pool.query('DELETE FROM import_faults');
    await db.pool.query(`INSERT INTO import_faults VALUES ($1, 1, false), ($2, 0, true)`, [slowHunt, failingHunt]);
    const event = (eventId: string, huntId: string) => {
      line++;
      return { offset: String(line), key: null, value: Buffer.from(JSON.stringify(clueFound({ eventId, huntId, playerId: `p${line}`, clueId: `c${line}` }))), timestamp: '0' };
    };
    // Chunk 1 holds chunk 0's slow-lane eventId in the other lane: it waits for both of chunk 0's lanes.
    const chunks = [prepareImport(origin, [event('settle-fails', failingHunt), event('settle-shared', slowHunt)], options), prepareImport(origin, [event('settle-shared', steadyHunt), event('settle-later', slowHunt)], options)];
    const { failure } = await importChunks(chunks);
    expect((failure as { code?: string }).code).toBe('40P01');
    // Settled means no commit of the pipeline runs any more: the slow lane's part is in.
    const { rows } = await db.pool.query<{ hunt_id: string }>(`SELECT hunt_id FROM events WHERE event_id = 'settle-shared'`);
    expect(rows).toEqual([{ hunt_id: slowHunt }]);
  });
});

describe('the file backfill, with an eventId the file holds twice', () => {
  /** One record: `eventId` as a clue of `huntId`. */
  const record = (eventId: string, huntId: string) => {
    line++;
    const event = clueFound({ eventId, huntId, playerId: `p${line}`, clueId: `c${line}` });
    return { offset: String(line), key: null, value: Buffer.from(JSON.stringify(event)), timestamp: '0' };
  };
  const storedHuntOf = async (eventId: string) =>
    (await db.pool.query<{ hunt_id: string }>('SELECT hunt_id FROM events WHERE event_id = $1', [eventId])).rows.map((r) => r.hunt_id);

  it('stores the first in file order when both are in one chunk, in different lanes, and counts the other a duplicate', async () => {
    // The first copy's lane is slow: the other lane would commit its later copy first.
    await db.pool.query('DELETE FROM import_faults');
    await db.pool.query(`INSERT INTO import_faults VALUES ($1, 0.3, false)`, [slowHunt]);
    const prepared = await prepareImport(origin, [record('twice-1', slowHunt), record('c-1', steadyHunt), record('twice-1', steadyHunt)], options);
    expect(prepared.whole).toBe(true);
    const pipeline = new ImportPipeline(db.pool, options);
    let counts: ImportCounts | undefined;
    await pipeline.push(prepared, (c) => (counts = c));
    await pipeline.drain();
    expect(await storedHuntOf('twice-1')).toEqual([slowHunt]);
    expect(counts).toMatchObject({ records: 3, inserted: 2, duplicates: 1, filteredOut: 0 });
  });

  it('lets a resend in the same hunt go ahead of the other lanes, and still stores the first copy', async () => {
    await db.pool.query('DELETE FROM import_faults');
    await db.pool.query(`INSERT INTO import_faults VALUES ($1, 3, false)`, [slowHunt]);
    const resent = (points: number) => {
      line++;
      const event = clueFound({ eventId: 'resent-1', huntId: steadyHunt, playerId: 'p-resent', clueId: 'c-resent', points });
      return { offset: String(line), key: null, value: Buffer.from(JSON.stringify(event)), timestamp: '0' };
    };
    const chunks = [await prepareImport(origin, [resent(10), record('slow-1', slowHunt)], options), await prepareImport(origin, [resent(20), record('after-1', steadyHunt)], options)];
    const pipeline = new ImportPipeline(db.pool, options);
    const counts: ImportCounts[] = [];
    for (const c of chunks) await pipeline.push(c, (committed) => counts.push(committed));
    // The later chunk's part holds an eventId of the slow chunk, in its own lane: it must not wait for the slow lane.
    const deadline = Date.now() + 2500;
    while ((await storedHuntOf('after-1')).length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const whileSlowLaneCommits = { after: await storedHuntOf('after-1'), slow: await storedHuntOf('slow-1') };
    await pipeline.drain();
    expect(whileSlowLaneCommits).toEqual({ after: [steadyHunt], slow: [] });
    const { rows } = await db.pool.query<{ points: number }>(`SELECT (payload->>'points')::int AS points FROM events WHERE event_id = 'resent-1'`);
    expect(rows).toEqual([{ points: 10 }]);
    expect(counts.map((c) => [c.inserted, c.duplicates])).toEqual([[2, 0], [1, 1]]);
  });

  it('commits a whole chunk after every lane\'s earlier parts and before their next, each hunt in file order', async () => {
    await db.pool.query('DELETE FROM import_faults');
    await db.pool.query(`INSERT INTO import_faults VALUES ($1, 0.3, false)`, [slowHunt]);
    // Another hunt of the slow hunt's lane: its events wait behind the slow ones in their lane's parts.
    const laneMate = huntInLane(1, [slowHunt]);
    const whole = (run: string) => [record(`${run}-100`, steadyHunt), record(`${run}-100`, laneMate)];
    // The lane's part before the whole chunk waits behind a slow one (so it has not begun, nor
    // locked its hunts, when the whole chunk is pushed); the whole chunk's own events are fast.
    const before = await importChunks([
      prepareImport(origin, [record('w-1', slowHunt)], options),
      prepareImport(origin, [record('w-2', laneMate)], options),
      prepareImport(origin, [...whole('w'), record('w-3', laneMate)], options),
      prepareImport(origin, [record('w-4', laneMate)], options),
    ]);
    expect(before).toEqual({ reported: [0, 1, 2, 3], failure: undefined });
    expect((await storedOrder('w'))[laneMate]).toEqual([2, 3, 4]);
    // The whole chunk is slow and first: the lane has no part before it, and its next part still waits for it.
    const first = await importChunks([prepareImport(origin, [...whole('v'), record('v-1', slowHunt), record('v-2', laneMate)], options), prepareImport(origin, [record('v-3', laneMate)], options)]);
    expect(first).toEqual({ reported: [0, 1], failure: undefined });
    expect((await storedOrder('v'))[laneMate]).toEqual([2, 3]);
  });

  it('stores the first in file order when the second is in a later chunk, in another lane, that would commit first', async () => {
    await db.pool.query('DELETE FROM import_faults');
    await db.pool.query(`INSERT INTO import_faults VALUES ($1, 0.3, false)`, [slowHunt]);
    const chunks = [prepareImport(origin, [record('twice-2', slowHunt)], options), prepareImport(origin, [record('twice-2', steadyHunt), record('c-2', steadyHunt)], options)];
    const { reported, failure } = await importChunks(chunks);
    expect({ reported, failure }).toEqual({ reported: [0, 1], failure: undefined });
    expect(await storedHuntOf('twice-2')).toEqual([slowHunt]);
    expect(await storedHuntOf('c-2')).toEqual([steadyHunt]);
  });
});

describe('the file backfill with plain inserts, each lane leaving out its repeats of earlier chunks', () => {
  const record = (eventId: string, huntId: string, points = 10) => {
    line++;
    const event = clueFound({ eventId, huntId, playerId: `p${line}`, clueId: `c${line}`, points });
    return { offset: String(line), key: null, value: Buffer.from(JSON.stringify(event)), timestamp: '0' };
  };
  const stored = async (eventId: string) =>
    (await db.pool.query<{ hunt_id: string; source: string; points: number }>(`SELECT hunt_id, source, (payload->>'points')::int AS points FROM events WHERE event_id = $1`, [eventId])).rows;
  /** Pushes each chunk (its records) through one pipeline with plain inserts and a memory of the chunks before; returns each chunk's counts. */
  async function importWithPlainInserts(chunks: ReturnType<typeof record>[][]) {
    const fileOptions = { ...options, earlierChunks: new RecentEventIds() };
    const pipeline = new ImportPipeline(db.pool, fileOptions, { plainInserts: true });
    const counts: ImportCounts[] = [];
    for (const c of chunks) await pipeline.push(await prepareImport(origin, c, fileOptions), (committed) => counts.push(committed));
    await pipeline.drain();
    return counts;
  }

  beforeAll(async () => {
    await db.pool.query('DELETE FROM import_faults');
    // A refusal for the row's data (a CHECK-like error): a clue worth 13 points is refused.
    await db.pool.query(`CREATE FUNCTION refuse_thirteen() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.payload->>'points' = '13' THEN RAISE EXCEPTION 'thirteen points refused (a test fault)' USING ERRCODE = '23514'; END IF;
        RETURN NEW;
      END $$`);
    await db.pool.query('CREATE TRIGGER refuse_thirteen BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_thirteen()');
    // Each row an INSERT proposed (ON CONFLICT's too), as committed: a failed plain insert's rows roll back with it.
    await db.pool.query('CREATE TABLE insert_attempts (event_id text NOT NULL, points int)');
    await db.pool.query(`CREATE FUNCTION log_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO insert_attempts VALUES (NEW.event_id, (NEW.payload->>'points')::int);
        RETURN NEW;
      END $$`);
    await db.pool.query('CREATE TRIGGER log_attempt BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION log_attempt()');
  });
  const attempts = async (eventId: string) =>
    (await db.pool.query<{ points: number }>('SELECT points FROM insert_attempts WHERE event_id = $1', [eventId])).rows.map((r) => r.points);

  it('stores the first copy of a resend in a later chunk once, and counts the resend a duplicate', async () => {
    const counts = await importWithPlainInserts([[record('plain-first', steadyHunt)], [record('plain-a', slowHunt)], [record('plain-first', steadyHunt, 20), record('plain-b', steadyHunt)]]);
    expect(counts.map((c) => [c.inserted, c.duplicates])).toEqual([[1, 0], [1, 0], [1, 1]]);
    expect((await stored('plain-first')).map((r) => r.points)).toEqual([10]);
    expect(await stored('plain-b')).toHaveLength(1);
    // The resend never reached the store: the plain insert left it out, and met no conflict that sent it the ordinary way.
    expect(await attempts('plain-first')).toEqual([10]);
  });

  it('stores a later copy of an event whose first copy the database refused', async () => {
    const counts = await importWithPlainInserts([[record('plain-seed', slowHunt)], [record('plain-refused', steadyHunt, 13)], [record('plain-refused', steadyHunt, 20), record('plain-c', steadyHunt)]]);
    expect(counts.map((c) => [c.inserted, c.duplicates, c.rejectedByReason.unprocessable ?? 0])).toEqual([[1, 0, 0], [0, 0, 1], [2, 0, 0]]);
    expect((await stored('plain-refused')).map((r) => r.points)).toEqual([20]);
  });

  it('stores a repeat in the same chunk whose first copy the database refused, whether the chunk goes plain or not', async () => {
    // The second chunk goes plain, leaving the repeat out; the refusal sends it the ordinary way, every row in.
    const plain = await importWithPlainInserts([[record('in-chunk-seed', steadyHunt)], [record('in-chunk-1', steadyHunt, 13), record('in-chunk-1', steadyHunt, 20)]]);
    expect(plain.map((c) => [c.inserted, c.duplicates, c.rejectedByReason.unprocessable ?? 0])).toEqual([[1, 0, 0], [1, 0, 1]]);
    expect((await stored('in-chunk-1')).map((r) => r.points)).toEqual([20]);
    // A call's first chunk goes the ordinary way.
    const ordinary = await importWithPlainInserts([[record('in-chunk-2', steadyHunt, 13), record('in-chunk-2', steadyHunt, 21)]]);
    expect(ordinary.map((c) => [c.inserted, c.duplicates, c.rejectedByReason.unprocessable ?? 0])).toEqual([[1, 0, 1]]);
    expect((await stored('in-chunk-2')).map((r) => r.points)).toEqual([21]);
  });

  it('stores a repeat under a hunt of another lane whose first copy the database refused, in a call\'s first chunk or a later one', async () => {
    // The chunk holds the eventId under hunts of both lanes: it commits whole, and the refusal isolates the first copy.
    const first = await importWithPlainInserts([[record('across-1', slowHunt, 13), record('across-other', steadyHunt), record('across-1', steadyHunt, 20)]]);
    expect(first.map((c) => [c.inserted, c.duplicates, c.rejectedByReason.unprocessable ?? 0])).toEqual([[2, 0, 1]]);
    expect((await stored('across-1')).map((r) => [r.hunt_id, r.points])).toEqual([[steadyHunt, 20]]);
    const later = await importWithPlainInserts([[record('across-seed', steadyHunt)], [record('across-2', slowHunt, 13), record('across-2', steadyHunt, 21)]]);
    expect(later.map((c) => [c.inserted, c.duplicates, c.rejectedByReason.unprocessable ?? 0])).toEqual([[1, 0, 0], [1, 0, 1]]);
    expect((await stored('across-2')).map((r) => [r.hunt_id, r.points])).toEqual([[steadyHunt, 21]]);
  });

  it('stores a later repeat, in its lane, of an event a whole chunk had refused', async () => {
    // The whole chunk refuses both copies; the memory says the first was the slow hunt's lane's, so a
    // later copy there counts as that lane's repeat: a plain insert would leave it out, and lose it.
    const counts = await importWithPlainInserts([[record('whole-seed', steadyHunt)], [record('whole-1', slowHunt, 13), record('whole-1', steadyHunt, 13)], [record('whole-1', slowHunt, 22)]]);
    expect(counts.map((c) => [c.inserted, c.duplicates, c.rejectedByReason.unprocessable ?? 0])).toEqual([[1, 0, 0], [0, 0, 2], [1, 0, 0]]);
    expect((await stored('whole-1')).map((r) => [r.hunt_id, r.points])).toEqual([[slowHunt, 22]]);
  });

  it('commits a chunk the ordinary way when its plain insert meets an eventId stored before the import', async () => {
    // Stored by an earlier import: this one's memory does not hold it.
    const earlier = new ImportPipeline(db.pool, options);
    await earlier.push(await prepareImport({ ...origin, sourceLabel: 'backfill:earlier' }, [record('plain-stored-1', steadyHunt)], options), () => {});
    await earlier.drain();
    const counts = await importWithPlainInserts([[record('plain-new-1', steadyHunt)], [record('plain-new-2', slowHunt), record('plain-stored-1', steadyHunt), record('plain-new-3', steadyHunt)], [record('plain-new-4', steadyHunt)]]);
    expect(counts.map((c) => [c.inserted, c.duplicates])).toEqual([[1, 0], [2, 1], [1, 0]]);
    expect((await stored('plain-stored-1')).map((r) => r.source)).toEqual([expect.stringMatching(/^backfill:earlier:/)]);
    for (const id of ['plain-new-1', 'plain-new-2', 'plain-new-3', 'plain-new-4']) expect(await stored(id)).toHaveLength(1);
  });
});
