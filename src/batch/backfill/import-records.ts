/**
 * Imports one chunk of historical records through the hot path's own steps: the same
 * classification (classifySlice), the same store-and-score transaction (commitMicroBatch:
 * dedupe by eventId, projection deltas only for new events, quarantine for rejects).
 *
 * Two steps, so a caller can prepare the next chunk (CPU) while this one commits (Postgres).
 * A chunk commits in lanes: its events split by hunt into `lanes` transactions that run at
 * once on their own connections, so Postgres can use more than one core. Each hunt's events
 * stay in one lane, in file order, so first-arrival scoring sees them in the order a single
 * transaction would; lanes touch disjoint fence rows. If one lane commits and another fails,
 * the retried chunk finds the committed lane's events stored already (no effect) and
 * imports the rest: the result is the same as one transaction's.
 *
 * An eventId the source holds twice under different hunts would sit in two lanes, and the
 * lane that committed first would store its copy (and the two would wait on each other's
 * insert, deadlocking): the first in source order must be the one stored. So a chunk that
 * holds an eventId under hunts of two lanes commits whole, as one transaction in source order
 * (`whole`), once every lane's parts before it are in, and the lanes' next parts wait for it:
 * the first copy is stored, or, if the database refuses it, the isolating commit stores the
 * next. Such a chunk (a client reusing an eventId across hunts) gives up its lanes, never
 * its records. A chunk holding an eventId that a chunk still committing holds in another lane
 * waits for every lane of the chunks before it. A repeat in the same lane (a resend in the
 * same hunt, the common repeat) stays in its lane's rows: the lane stores the first copy
 * first, in the same statement or an earlier part, and if the database refuses that copy, the
 * repeat is still there to be stored. (A repeat the database would refuse for its own data is
 * quarantined as unprocessable by an ordinary commit, which proposes it, and counted a
 * duplicate by a plain one, which leaves it out.) A file import's chunks go in with plain
 * inserts, which leave those repeats out (RecentEventIds, ImportPipeline).
 */
import type pg from 'pg';
import type { StatementBounds } from '../../store/bounded-transaction';
import { setImmediate as turnOfEventLoop } from 'node:timers/promises';
import { classifySlice, type ClassifiedSlice, type RejectedRecord, type SourceRecord } from '../../pipeline/classify';
import { commitMicroBatch } from '../../pipeline/commit';
import { countStoredAsThemselves } from '../../store/batch/backfill-own-events';
import { advanceSequences, SeqNotMovableError } from '../../store/serial-sequences';
import { isSeqCollision } from '../../store/hot-path/errors';
import { countStoredEvents } from '../../store/batch/import-dry-run';
import { concatRows, eventIdAt, groupRowsByHunt, laneOfHunt, rowCount, type EventRows } from '../../store/hot-path/event-rows';
import { concatOrigins, pickOrigins, type RecordOrigins } from '../../store/hot-path/record-origins';
import { PlainInsertPause } from '../../ingest/known-events';
import { settleAll } from '../../settle-all';
import type { ImportCounts } from './counts';
import type { RecentEventIds } from './recent-event-ids';

export { addCounts, emptyCounts, type ImportCounts } from './counts';

export interface ImportOrigin {
  /** Quarantine's source_topic for rejects, e.g. `file:/data/events.ndjson` or a Kafka topic. */
  topic: string;
  partition: number;
  /** Provenance prefix stored with accepted events. */
  sourceLabel: string;
}

export interface ImportOptions {
  dryRun: boolean;
  /** The step's limits for each commit (commit.ts, CommitOptions.bounds). */
  bounds?: StatementBounds;
  huntId?: string;
  groupId: string;
  now?: Date;
  /** Transactions a chunk commits in at once (by hunt); 1 = one transaction. */
  lanes?: number;
  /**
   * A retried attempt: an earlier one may have committed chunks past the heartbeat it resumes
   * from, so events found stored under their own record's source count as inserted (they
   * were, by this job), not as duplicates.
   */
  resumed?: boolean;
  /**
   * The eventIds of the import's chunks before this one (a file import's, in file order):
   * each lane lists its rows that repeat one in the same lane (`repeatsInLane`),
   * and the chunk's own are added.
   */
  earlierChunks?: RecentEventIds;
}

export interface PreparedChunk {
  /**
   * The chunk's accepted events, split by hunt into the commit lanes. `repeatsInLane`: the
   * lane's rows (by index) whose eventId an earlier row of the lane holds, in this chunk or
   * in an earlier one (`earlierChunks`), which a plain insert leaves out.
   */
  lanes: { rows: EventRows; origins: RecordOrigins; repeatsInLane: number[] }[];
  /** The eventIds the lanes hold, with the lane of each one's first copy (a lane may hold an id twice: `repeatsInLane`). */
  eventIds: ReadonlyMap<string, number>;
  /**
   * An eventId under hunts of two lanes: the chunk is one lane of every accepted row, in source
   * order, committed the ordinary way after every lane's earlier parts, and before their next.
   */
  whole: boolean;
  rejected: RejectedRecord[];
  /** Counts known before committing: records, rejects, filtered out. */
  counts: Omit<ImportCounts, 'inserted' | 'duplicates'>;
}

/**
 * Classifies a chunk, applies the job's hunt filter and splits the events by hunt into the
 * commit lanes; CPU, no I/O. `rejectedAlready` are records of the chunk the reader rejected
 * itself (lines too long to hold).
 *
 * In steps of CLASSIFY_STEP records, letting the event loop run between them: the file
 * import prepares a chunk while the lanes commit the ones before (ImportPipeline), and a
 * chunk of 10,000 records takes about 80 ms to read and classify. Done in one go, it held up
 * every lane's next statement and COMMIT that long, chunk after chunk; the lanes' connections
 * idled, and Postgres used 1.3 of the 2 cores where it uses 1.4 now (experiments §71).
 */
export async function prepareImport(origin: ImportOrigin, records: readonly SourceRecord[], options: ImportOptions, rejectedAlready: RejectedRecord[] = []): Promise<PreparedChunk> {
  const slice = await classifyInSteps(origin, records, options.now ?? new Date());
  const lanes = Math.max(1, options.lanes ?? 1);
  const wanted = (huntId: string) => options.huntId === undefined || huntId === options.huntId;
  const laneOf = (huntId: string) => (wanted(huntId) ? laneOfHunt(huntId, lanes) : -1);
  const laneOfHuntIndex = slice.rows.huntIds.map(laneOf);
  const eventIds = new Map<string, number>();
  const repeatsInLane = new Set<number>();
  let acrossLanes = false;
  for (let i = 0; i < rowCount(slice.rows); i++) {
    const lane = laneOfHuntIndex[slice.rows.huntOf[i] as number] as number;
    if (lane < 0) continue;
    const id = eventIdAt(slice.rows, i);
    const firstLane = eventIds.get(id);
    if (firstLane === undefined) {
      eventIds.set(id, lane);
      if (options.earlierChunks?.laneOf(id) === lane) repeatsInLane.add(i);
    } else if (firstLane === lane) repeatsInLane.add(i);
    else acrossLanes = true;
  }
  options.earlierChunks?.addAll(eventIds);
  // A whole chunk commits the ordinary way: it lists no repeats for a plain insert to leave out.
  const groups = acrossLanes ? groupRowsByHunt(slice.rows, 1, (huntId) => (wanted(huntId) ? 0 : -1)) : groupRowsByHunt(slice.rows, lanes, laneOf);
  const kept = groups.reduce((n, g) => n + g.taken.length, 0);
  // Another hunt's rejects are filtered out too: quarantined, a later DLQ replay would import
  // them. Those whose hunt cannot be read are kept.
  const allRejected = [...rejectedAlready, ...slice.rejected];
  const rejected = options.huntId === undefined ? allRejected : allRejected.filter((r) => wantedReject(r, options.huntId as string));
  const rejectedByReason: Record<string, number> = {};
  for (const r of rejected) rejectedByReason[r.reason] = (rejectedByReason[r.reason] ?? 0) + 1;
  return {
    lanes: groups.map((g) => ({ rows: g.rows, origins: pickOrigins(slice.origins, g.taken), repeatsInLane: acrossLanes ? [] : positionsOf(g.taken, repeatsInLane) })),
    eventIds,
    whole: acrossLanes,
    rejected,
    counts: {
      records: records.length + rejectedAlready.length,
      rejected: rejected.length,
      rejectedByReason,
      filteredOut: rowCount(slice.rows) - kept + (allRejected.length - rejected.length),
    },
  };
}

/**
 * Whether a reject may be `huntId`'s: the `huntId` its value states, else its Kafka key (the
 * hunt, by the contract), says so, or nothing readable says otherwise.
 */
function wantedReject(reject: RejectedRecord, huntId: string): boolean {
  let stated: unknown;
  // Not JSON, or too large to be read: only the key can say.
  if (reject.reason !== 'too_large' && reject.reason !== 'invalid_json' && reject.value !== null) {
    try {
      stated = (JSON.parse(reject.value.toString('utf8')) as { huntId?: unknown } | null)?.huntId;
    } catch {
      // An unreadable batch's stand-in (compressed bytes): only the key can say.
    }
  }
  if (typeof stated !== 'string' || stated === '') stated = reject.key?.toString('utf8');
  return typeof stated !== 'string' || stated === '' || stated === huntId;
}

/** The positions in `taken` (ascending row indices) of the rows `marked` holds. */
function positionsOf(taken: readonly number[], marked: ReadonlySet<number>): number[] {
  if (marked.size === 0) return [];
  const positions: number[] = [];
  for (const [position, row] of taken.entries()) if (marked.has(row)) positions.push(position);
  return positions;
}

/** Records classified between two turns of the event loop: a few milliseconds of CPU. */
const CLASSIFY_STEP = 1000;

async function classifyInSteps(origin: ImportOrigin, records: readonly SourceRecord[], now: Date): Promise<Pick<ClassifiedSlice, 'rows' | 'origins' | 'rejected'>> {
  const parts: ClassifiedSlice[] = [];
  for (let from = 0; from < records.length; from += CLASSIFY_STEP) {
    if (from > 0) await turnOfEventLoop();
    parts.push(classifySlice(origin.topic, origin.partition, records.slice(from, from + CLASSIFY_STEP), now, origin.sourceLabel));
  }
  return { rows: concatRows(parts.map((p) => p.rows)), origins: concatOrigins(parts.map((p) => p.origins)), rejected: parts.flatMap((p) => p.rejected) };
}

/** What committing a prepared chunk would do, counted without writing (a dry run; a real one goes through ImportPipeline). */
export async function countImport(pool: pg.Pool, chunk: PreparedChunk): Promise<ImportCounts> {
  const accepted = chunk.lanes.reduce((n, l) => n + rowCount(l.rows), 0);
  const ids = [...chunk.eventIds.keys()];
  const wouldInsert = ids.length - (await countStoredEvents(pool, ids));
  return { ...chunk.counts, inserted: wouldInsert, duplicates: accepted - wouldInsert };
}

/**
 * Commits prepared chunks through one queue per commit lane, so a lane does not wait for
 * another: each lane commits its part of chunk after chunk in order (a hunt always maps to
 * the same lane, so each hunt's events stay in file order), while the next chunk is read and
 * classified. The exceptions wait for every lane: a chunk holding an eventId that another
 * lane of a chunk still committing holds, and a whole chunk (`PreparedChunk.whole`), which
 * every lane's next part waits for in turn. A chunk counts as committed once every lane has
 * committed its part; `onCommitted` runs for chunks in their order, so the cursor it
 * heartbeats never passes a chunk that is not wholly in. At most MAX_PENDING_CHUNKS are in
 * flight (memory bound).
 *
 * After the first failure nothing more is committed or reported: a lane's later parts would
 * put a hunt's events in after a gap (first arrival decides a treasure), and a later chunk's
 * report would move the heartbeat past the failed one, so the retry would never import it.
 */
/** Chunks a pipeline holds at once, committing or waiting to: the bound on its memory. */
const MAX_PENDING_CHUNKS = 3;

export class ImportPipeline {
  private readonly laneTails: Promise<unknown>[] = [];
  /** The eventIds of the chunks still committing, until they are in. */
  private readonly committing = new Set<ReadonlyMap<string, number>>();
  private reported: Promise<void> = Promise.resolve();
  private readonly inFlight: Promise<unknown>[] = [];
  private failure: unknown;

  /** Plain inserts pause after one met a stored eventId (the store held what the chunks before did not). */
  private readonly pause = new PlainInsertPause();
  private chunksPushed = 0;
  /** Lanes that had a row refused: they leave nothing out any more. */
  private readonly lanesWithRefusals = new Set<number>();
  private readonly plainInserts: boolean;

  /**
   * `plainInserts`: the chunks after the first (whole ones excepted) go in with a plain
   * INSERT, sparing the primary key's lookup before each insert (experiments §60, §72), each
   * lane's part leaving out its repeats (`repeatsInLane`): their first copies come before them
   * in the same statement or in a part the lane committed before, so they are stored. Unless the database refused one
   * of the lane's rows: a refusal fails the plain statement, the part is committed again with
   * every row, the refused ones isolated (the repeat of a refused copy is stored), and the lane
   * commits the ordinary way for the rest of the pipeline. A plain insert that meets
   * a stored eventId (an earlier job's, the hot path's, this job's before a retry) commits
   * again the ordinary way, and the next parts go that way too for a while (PlainInsertPause).
   */
  constructor(
    private readonly pool: pg.Pool,
    private readonly options: ImportOptions,
    settings: { plainInserts?: boolean } = {},
  ) {
    this.plainInserts = settings.plainInserts ?? false;
  }

  /** Queues a chunk; resolves when there is room for the next. Throws the first failure of any lane. */
  async push(chunk: PreparedChunk, onCommitted: (counts: ImportCounts) => void): Promise<void> {
    this.throwIfFailed();
    // An eventId of a chunk still committing, in another lane: this chunk's lanes wait for
    // all of the earlier chunks, so the earlier row is stored and this one finds it there.
    // Every one settled, not the first failure: a lane still committing stays on this chunk's
    // chain, so settle() waits for it (a retry must not race it).
    // A whole chunk waits for every lane the same way.
    const barrier = chunk.whole || this.sharesEventIdsAcrossLanes(chunk) ? settleAll([...this.laneTails]) : undefined;
    // The first chunk has no chunks before it in the memory: its repeats of the call before would conflict.
    const afterFirst = this.chunksPushed++ > 0;
    const parts = chunk.lanes.map((lane, i) => {
      const rejected = i === 0 ? chunk.rejected : [];
      if (i > 0 && rowCount(lane.rows) === 0) return Promise.resolve({ inserted: 0, unprocessable: 0 });
      const previous = barrier ?? this.laneTails[i] ?? Promise.resolve();
      // A failed part fails the lane's later parts without committing them (previous rejects).
      const commit = previous.then(async () => {
        if (this.failure) throw this.failure;
        // Decided now, once the lane's parts before have committed (a conflict among them pauses plain inserts).
        const plain = this.plainInserts && afterFirst && !chunk.whole && !this.lanesWithRefusals.has(i) && this.pause.take();
        const plainInsert = plain ? { leaveOut: lane.repeatsInLane } : undefined;
        const part = { rows: lane.rows, origins: lane.origins, rejected, offsets: [] };
        const r = await commitMicroBatch(this.pool, this.options.groupId, part, { plainInsert, bounds: this.options.bounds }).catch(async (err: unknown) => {
          // A sequence behind the stored rows (serial-sequences.ts): moved forward, committed once more.
          if (!isSeqCollision(err)) throw err;
          await advanceSequences(this.pool).catch((advanceErr: unknown) => {
            if (advanceErr instanceof SeqNotMovableError) throw advanceErr; // names the command that moves it
          });
          if (this.failure) throw this.failure;
          return commitMicroBatch(this.pool, this.options.groupId, part, { plainInsert, bounds: this.options.bounds });
        });
        if (r.plainInsertConflicted) this.pause.conflicted();
        // A whole chunk's refused row may be the first copy of a later repeat in any lane.
        if (r.isolated) for (const refused of chunk.whole ? this.laneNumbers() : [i]) this.lanesWithRefusals.add(refused);
        return { inserted: r.inserted, unprocessable: r.unprocessable.length };
      });
      this.laneTails[i] = commit;
      return commit;
    });
    // Every lane's next part waits for a whole chunk.
    if (chunk.whole) for (const lane of this.laneNumbers()) this.laneTails[lane] = parts[0]!;
    this.committing.add(chunk.eventIds);
    void Promise.allSettled(parts).then(() => this.committing.delete(chunk.eventIds));
    const done = Promise.all(parts)
      .then((results) => countsOf(chunk, results))
      .then((counts) => (this.options.resumed ? this.creditEarlierAttempts(chunk, counts) : counts));
    // Handled at once: a later chunk may fail before an earlier one has reported.
    done.catch((err: unknown) => this.fail(err));
    // A chunk reports only after every chunk before it did: one failure ends the reports.
    this.reported = this.reported.then(async () => onCommitted(await done));
    this.inFlight.push(this.reported.catch((err: unknown) => this.fail(err)));
    while (this.inFlight.length >= MAX_PENDING_CHUNKS) {
      await this.inFlight.shift();
      if (this.failure) throw this.failure;
    }
  }

  /** The commit lanes' numbers: as many as the options say, and any a chunk brought beyond them. */
  private laneNumbers(): number[] {
    return Array.from({ length: Math.max(1, this.options.lanes ?? 1, this.laneTails.length) }, (_, i) => i);
  }

  /**
   * Runs `report` once every chunk pushed before it has reported, and never after a failure:
   * for progress that must not pass those chunks (a Kafka import's records deleted before it
   * read them, passed in the cursor of a partition whose earlier slices still commit).
   */
  after(report: () => void): void {
    this.reported = this.reported.then(report);
    // Not among the chunks in flight (it holds no rows): settle() waits for it through `reported`.
    void this.reported.catch((err: unknown) => this.fail(err));
  }

  /** Throws the first failure of any lane, if there was one: a caller need not read on for nothing. */
  throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  /**
   * Whether the chunk holds an eventId that a chunk still committing holds in another lane.
   * One in the same lane is stored first anyway: a lane commits its parts in order.
   */
  private sharesEventIdsAcrossLanes(chunk: PreparedChunk): boolean {
    for (const lanes of this.committing) {
      for (const [id, lane] of chunk.eventIds) {
        const earlier = lanes.get(id);
        if (earlier !== undefined && earlier !== lane) return true;
      }
    }
    return false;
  }

  private fail(err: unknown): void {
    this.failure ??= err;
  }

  /** Duplicates an earlier attempt of this job stored from these very records count as inserted, as they were. */
  private async creditEarlierAttempts(chunk: PreparedChunk, counts: ImportCounts): Promise<ImportCounts> {
    if (counts.duplicates === 0) return counts;
    // Counts this commit's inserts too: they are stored under their own source now.
    const storedByThisJob = await countStoredAsThemselves(this.pool, chunk.lanes.map((l) => l.rows));
    const earlier = Math.max(0, storedByThisJob - counts.inserted);
    return { ...counts, inserted: counts.inserted + earlier, duplicates: counts.duplicates - earlier };
  }

  /** Waits for every queued chunk; throws the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    if (this.failure) throw this.failure;
  }

  /**
   * Waits until no commit of this pipeline runs any more, whatever failed: an attempt that
   * ends (fails) with commits still running would have its retry race them.
   */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inFlight, ...this.laneTails, this.reported]);
  }
}

function countsOf(chunk: PreparedChunk, results: { inserted: number; unprocessable: number }[]): ImportCounts {
  const accepted = chunk.lanes.reduce((n, l) => n + rowCount(l.rows), 0);
  const inserted = results.reduce((sum, r) => sum + r.inserted, 0);
  const unprocessable = results.reduce((sum, r) => sum + r.unprocessable, 0);
  const rejectedByReason = { ...chunk.counts.rejectedByReason };
  if (unprocessable > 0) rejectedByReason.unprocessable = (rejectedByReason.unprocessable ?? 0) + unprocessable;
  return { ...chunk.counts, rejected: chunk.counts.rejected + unprocessable, rejectedByReason, inserted, duplicates: accepted - inserted - unprocessable };
}
