/**
 * Where each partition resumes: Postgres decides (consumer_offsets, written in the same
 * transaction as the events), never Kafka's committed offsets. Where Postgres has no offset
 * for a partition yet, the consumer starts from a configured position (the log start by
 * default) and records it in Postgres before taking anything, so a crash before the first
 * commit cannot skip records, and a later retention gap is noticed.
 *
 * Every fetch is checked against the position: a fetch that started elsewhere (Kafka's
 * committed offset raced the seek, or a stale fetch after a rebalance) is dropped and the
 * partition sought back; a fetch that starts past the position because retention deleted
 * the records in between is a retention gap: logged with the offsets lost, counted, and
 * then either skipped (consumption continues from the log start) or held (`stop`). A
 * position past the end of the log means the log went back (the topic was deleted and
 * created again, or an unclean leader election truncated it): the partition is read again
 * from the log start (log-reset.ts), since eventIds make a re-read harmless and a skip would
 * lose the new log's records below the old position. A new log may also have grown past the
 * position by the time it is read: after a join (and when the broker said the partitions were
 * unknown), the record before the position is fetched first and compared with what was
 * applied there (`verifying`); a different one is a reset too. Records
 * kafkajs steps over by itself (transaction markers, aborted transactions) move the position
 * too (passFiltered), or every fetch after them would look like one that started elsewhere.
 */
import { setMaxListeners } from 'node:events';
import { KnownEvents } from './known-events';
import type pg from 'pg';
import { backoffMs, sleep } from '../backoff';
import { loadJoinPositions, loadOffsets, storeStartOffset } from '../store/hot-path/offsets';
import { withTransaction } from '../store/transaction';

export type StartFrom = 'earliest' | 'latest';
export type OnRetentionGap = 'continue' | 'stop';

export interface Watermarks {
  low: bigint;
  /** The committed end (the last stable offset): what a consumer reading committed records can reach. */
  high: bigint;
  /** Where the log ends, open transactions included (the monitor's watermarks only; log-end.ts). */
  logEnd?: bigint;
}

export type FetchCheck =
  | { action: 'take' }
  /** The fetch started elsewhere: seek here and drop it. */
  | { action: 'seek'; offset: bigint }
  /** Retention deleted [from, to) before it was read. */
  | { action: 'gap'; from: bigint; to: bigint }
  /** The log ends (at `logEnd`) before the position: the topic was recreated or its log truncated; read again from `logStart`. */
  | { action: 'reset'; position: bigint; logStart: bigint; logEnd: bigint }
  /** The fetch starts at the last record applied (`offset`), fetched again after a join to check that the log is still the one applied. */
  | { action: 'verify'; offset: bigint; position: bigint; logStart: bigint };

/**
 * The positions are being loaded after a join (resume): no fetch may be taken until they
 * are. Thrown rather than waited on, so the fetch's handler can keep the member's
 * heartbeats going while it waits (batch-handler.ts): a handler blocked past the session
 * timeout would have the member dropped from the group, and every member rebalanced.
 */
export class PositionsLoading extends Error {
  constructor() {
    super('the partitions\' positions are being loaded from Postgres after a join');
    this.name = 'PositionsLoading';
  }
}

/** A join's positions that could not be loaded are tried again after this, doubling, up to RESUME_RETRY_MAX_MS. */
const RESUME_RETRY_FIRST_MS = 250;
const RESUME_RETRY_MAX_MS = 5000;

export interface ResumeHooks {
  commitBuffered: () => Promise<void>;
  seek: (partition: number, offset: bigint) => void;
  /** The member is leaving: a join's positions failing to load are not tried again. */
  isStopping?: () => boolean;
  /** The positions failed to load (Postgres unreachable); tried again after `delayMs`. */
  onRetry?: (err: unknown, delayMs: number) => void;
}

export class PartitionPositions {
  /** Next offset to take per partition: Postgres's after each (re)join, then advanced as slices are buffered. */
  private readonly next = new Map<number, bigint>();
  /**
   * Per partition, a position Postgres is known to hold at least: loaded at the join, or
   * committed since by this process. Commits are refused below it (storeOffsets): Postgres
   * holding less has lost commits, and this process's positions would pass over their records.
   */
  private readonly floors = new Map<number, bigint>();
  /**
   * The eventIds this process committed lately (known-events.ts), which the hot path leaves
   * out of later batches unchecked. Only a floor catches the loss of the commit that stored
   * one, so the memory lives here and is forgotten in the same step as a floor is cleared or
   * lowered: from then on a lost commit above it would go unnoticed.
   */
  readonly committedEvents = new KnownEvents();
  /**
   * Partitions whose record before the stored position is to be fetched again and compared
   * with what was applied (after a join): a log deleted and created again, or truncated and
   * written again, can have grown past the position by then, and would otherwise be read on
   * from there, its first records never applied.
   */
  private readonly verifying = new Map<number, { offset: bigint; reseeks: number }>();
  /**
   * Log resets decided and not yet done (log-reset.ts: the rewind in Postgres failed, and the
   * fetch is checked again): the same reset is tried again. Decided anew, a log grown past the
   * position during the retry's wait would read as no reset at all, and be read on from the
   * old position, the new log's records below it never applied.
   */
  private readonly resetsUnderway = new Map<number, Extract<FetchCheck, { action: 'reset' }>>();
  /** Partitions whose stored position is where they started, nothing read since: no record before it was applied. */
  private unreadStarts = new Set<number>();
  /** Settles when the positions being loaded after a join are loaded (resume). */
  private resuming: Promise<unknown> | undefined;
  /** Resumes not yet done (fetches are refused meanwhile: PositionsLoading). */
  private loading = 0;
  /** The newest resume: an older one that fails gives way to it rather than try again. */
  private generation = 0;
  /**
   * Aborted when the group is rebalancing and this member will rejoin (holdForRejoin): take
   * nothing more until it has (resume), and fetches waiting for room in a lane stop waiting.
   */
  private rejoining = rejoinController();
  /** When the current rejoin was handed to kafkajs (performance.now()); undefined until then. */
  private handedOverAt: number | undefined;

  constructor(
    private readonly deps: {
      pool: pg.Pool;
      groupId: string;
      topic: string;
      startFrom: StartFrom;
      /** The partitions' watermarks; every partition's when none are named. */
      watermarks: (partitions?: number[]) => Promise<Map<number, Watermarks>>;
    },
  ) {}

  /**
   * After a join (or when the broker said the partitions were unknown): commits what the lanes
   * buffered (`commitBuffered`), reloads every partition's position from Postgres (another
   * member may have moved them), and has each of `partitions` fetched from its position
   * (`seek`); resolves the positions loaded. Fetches wait until this is done (check): one
   * taken meanwhile would move a position past what Postgres holds, and the record checked
   * after the join would then be one still buffered, not yet committed, which no check can
   * find applied (a false reset: the partition read again from the log start). What was
   * buffered before is committed first, or the position loaded would lie behind it and the
   * partition be read again from there (its rejects copied to the DLQ twice).
   *
   * Resumes run one after another (a join while the recheck's runs), so the last one asked
   * for decides the positions. One that fails (Postgres unreachable) is tried again with
   * backoff until it loads, a newer one is asked for, or the member stops: fetches taken
   * from positions not loaded would pass over the checks a join sets up (a log replaced
   * while the member was down would be read on from the old position, its first records
   * never applied).
   */
  resume(partitions: readonly number[], hooks: ResumeHooks): Promise<Map<number, bigint>> {
    const previous = this.resuming;
    if (this.rejoining.signal.aborted) {
      this.rejoining = rejoinController();
      this.handedOverAt = undefined;
    }
    const generation = ++this.generation;
    this.loading++;
    const resumed = (async () => {
      try {
        await previous;
        for (let attempt = 0; ; attempt++) {
          try {
            await hooks.commitBuffered();
            return await this.loadJoinOffsets(partitions, hooks.seek);
          } catch (err) {
            if (generation !== this.generation || hooks.isStopping?.()) throw err;
            const delayMs = backoffMs(attempt, RESUME_RETRY_FIRST_MS, RESUME_RETRY_MAX_MS);
            hooks.onRetry?.(err, delayMs);
            await sleep(delayMs);
          }
        }
      } finally {
        this.loading--;
      }
    })();
    const barrier: Promise<unknown> = resumed.then(
      () => undefined,
      () => undefined,
    );
    this.resuming = barrier;
    void barrier.then(() => {
      if (this.resuming === barrier) this.resuming = undefined;
    });
    return resumed;
  }

  private async loadJoinOffsets(partitions: readonly number[], seek: (partition: number, offset: bigint) => void): Promise<Map<number, bigint>> {
    const { stored, unreadStarts } = await loadJoinPositions(this.deps.pool, this.deps.groupId, this.deps.topic);
    // All at once, before anything else is awaited: a failure below (a partition's start
    // to record) must not leave a partition with its stored position and no check.
    this.unreadStarts = unreadStarts;
    this.next.clear();
    this.verifying.clear();
    this.resetsUnderway.clear();
    this.floors.clear();
    this.committedEvents.forget();
    for (const [partition, offset] of stored) {
      this.next.set(partition, offset);
      this.floors.set(partition, offset);
    }
    const toStart: number[] = [];
    for (const partition of partitions) {
      const offset = stored.get(partition);
      if (offset === undefined || offset === 0n || unreadStarts.has(partition)) {
        toStart.push(partition);
        continue;
      }
      // One record before the position, so that record (committed) is checked first (see `verifying`).
      this.verifying.set(partition, { offset: offset - 1n, reseeks: 0 });
      seek(partition, offset - 1n);
    }
    // At the position where there is none to check (recorded in Postgres first when there is none).
    const groupIsNew = stored.size === 0;
    for (const partition of toStart) seek(partition, await this.positionOf(partition, groupIsNew));
    return stored;
  }

  /**
   * The group is rebalancing: records not yet buffered are left for whoever owns their
   * partitions after the rejoin (which starts from Postgres), so that what this member
   * buffered can be committed before it rejoins and nothing is read twice. Until the next resume.
   */
  holdForRejoin(): void {
    this.rejoining.abort();
  }

  /**
   * The rejoin was handed to kafkajs, once the lanes' commit before it is done: from then on it
   * fetches nothing until it has rejoined (the latest hand-over of the hold counts: kafkajs
   * rejoins once every fetch's handler has returned).
   */
  rejoinHandedOver(now = performance.now()): void {
    if (this.heldForRejoin) this.handedOverAt = now;
  }

  /** How long since the rejoin was last handed to kafkajs, while it has not come (0: not handed over, or rejoined). */
  sinceRejoinHandedOver(now = performance.now()): number {
    return this.heldForRejoin && this.handedOverAt !== undefined ? now - this.handedOverAt : 0;
  }

  /** Aborted once the member is to rejoin (holdForRejoin), until the next resume. */
  get rejoinSignal(): AbortSignal {
    return this.rejoining.signal;
  }

  /** Whether fetched records are to be left untaken until the rejoin (holdForRejoin). */
  get heldForRejoin(): boolean {
    return this.rejoining.signal.aborted;
  }

  /** The check of the record before the position is done (passed, or not possible). */
  verified(partition: number): void {
    this.verifying.delete(partition);
  }

  /**
   * The position of `partition`: Postgres's, or the configured start, recorded in Postgres
   * first. `groupIsNew`: whether Postgres held no position for the group when the join looked.
   */
  async positionOf(partition: number, groupIsNew?: boolean): Promise<bigint> {
    const known = this.next.get(partition);
    if (known !== undefined) return known;
    const stored = (await this.storedPosition(partition)) ?? (await this.recordStart(partition, groupIsNew));
    this.advance(partition, stored);
    this.noteStored(partition, stored);
    return this.next.get(partition) as bigint;
  }

  private async storedPosition(partition: number): Promise<bigint | undefined> {
    return (await loadOffsets(this.deps.pool, this.deps.groupId, this.deps.topic)).get(partition);
  }

  /**
   * Records where a partition without a position starts. `latest` is where a group new to
   * the topic starts, and it starts there on every partition the topic has, recorded at
   * once: one by one, the first partition's start would make the group look old to the
   * next (and to a member starting alongside), which would then start at its log start and
   * apply what the setting skips. A partition added to the topic later (the group has
   * positions for others) starts at its log start whatever the setting: all of its records
   * came after the group started, and `latest` would skip those written before the group
   * learned of the partition.
   */
  private async recordStart(partition: number, groupIsNew?: boolean): Promise<bigint> {
    const latest = this.deps.startFrom === 'latest' && (groupIsNew ?? (await this.storedPositionCount()) === 0);
    const marks = await this.deps.watermarks(latest ? undefined : [partition]);
    if (!marks.has(partition)) throw new Error(`no watermarks for ${this.deps.topic}/${partition}`);
    const starts = [...marks].map(([p, m]) => ({ topic: this.deps.topic, partition: p, nextOffset: latest ? m.high : m.low }));
    await withTransaction(this.deps.pool, async (client) => {
      for (const start of starts) await storeStartOffset(client, this.deps.groupId, start);
    });
    // Another member may have stored a position meanwhile; offsets never move back, so read it again.
    return (await this.storedPosition(partition)) ?? (starts.find((start) => start.partition === partition)?.nextOffset as bigint);
  }

  private async storedPositionCount(): Promise<number> {
    return (await loadOffsets(this.deps.pool, this.deps.groupId, this.deps.topic)).size;
  }

  /** Decides what to do with a fetch of `partition` that started at `fetchedOffset`. */
  async check(partition: number, fetchedOffset: bigint): Promise<FetchCheck> {
    if (this.loading > 0) throw new PositionsLoading();
    if (this.resuming) await this.resuming;
    const position = await this.positionOf(partition);
    const underway = this.resetsUnderway.get(partition);
    if (underway) return underway;
    const verifying = this.verifying.get(partition);
    const toVerify = verifying?.offset;
    if (fetchedOffset === position && toVerify === undefined) return { action: 'take' };
    const marks = (await this.deps.watermarks([partition])).get(partition);
    // kafkajs starts over at the log start when the broker says the position is out of range.
    if (marks && fetchedOffset < position && position > marks.high) {
      const reset = { action: 'reset' as const, position, logStart: marks.low, logEnd: marks.high };
      this.resetsUnderway.set(partition, reset);
      return reset;
    }
    if (verifying && toVerify !== undefined) {
      if (fetchedOffset === toVerify) return { action: 'verify', offset: toVerify, position, logStart: marks?.low ?? 0n };
      // A fetch elsewhere: the join's seek raced Kafka's committed offset; seek once more. A
      // second one past it means kafkajs steps over that offset (a transaction marker), and
      // below the log start retention took it: nothing to compare either way.
      if (marks && toVerify >= marks.low && verifying.reseeks === 0) {
        verifying.reseeks++;
        return { action: 'seek', offset: toVerify };
      }
      this.verified(partition);
      if (fetchedOffset === position) return { action: 'take' };
    }
    if (marks && fetchedOffset > position && position < marks.low) return { action: 'gap', from: position, to: marks.low };
    return { action: 'seek', offset: position };
  }

  /** Moves the position past what was buffered (never back). */
  advance(partition: number, nextOffset: bigint): void {
    if ((this.next.get(partition) ?? -1n) < nextOffset) this.next.set(partition, nextOffset);
  }

  /**
   * kafkajs stepped over records at offsets [first, last] without handing them to eachBatch:
   * transaction markers and aborted transactions, which a read-committed consumer never sees.
   * When they cover the position, the partition goes on after them; returns the offsets passed,
   * [from, to), or undefined when they say nothing of it (position unknown, already past them,
   * or records before `first` not seen yet).
   */
  passFiltered(partition: number, first: bigint, last: bigint): { from: bigint; to: bigint } | undefined {
    const position = this.next.get(partition);
    if (position === undefined || first > position || last < position) return undefined;
    this.next.set(partition, last + 1n);
    return { from: position, to: last + 1n };
  }

  /**
   * Accepts a retention gap (the partition continues from `offset`). The floor stays: a skip
   * forward is stored only by the next commit.
   */
  skipTo(partition: number, offset: bigint): void {
    this.next.set(partition, offset);
  }

  /**
   * A log reset is done: the stored position was moved back to `logStart` (log-reset.ts), and
   * the partition is read again from there. Nothing is left to check before it: a check of the
   * old position's record, still armed from a join, would seek there and take the new log from
   * that offset on, its records between the log start and it never read.
   */
  readAgainFrom(partition: number, logStart: bigint): void {
    this.next.set(partition, logStart);
    this.verifying.delete(partition);
    this.resetsUnderway.delete(partition);
  }

  /**
   * The stored position is about to be moved back to `offset` (a log reset): the floor comes
   * down first, so no check between the rewind and readAgainFrom takes the rewind for a loss.
   */
  lowerFloor(partition: number, offset: bigint): void {
    const floor = this.floors.get(partition);
    if (floor !== undefined && offset < floor) {
      this.floors.set(partition, offset);
      this.committedEvents.forget();
    }
  }

  /** The floors of `partitions` now (read before the stored positions they are compared with). */
  private floorsOf(partitions: readonly number[]): Map<number, bigint> {
    return new Map(partitions.flatMap((p) => (this.floors.has(p) ? [[p, this.floors.get(p) as bigint] as const] : [])));
  }

  /**
   * A check of stored positions against the floors of `partitions`, taken now, before the
   * positions are read: a floor that rises meanwhile (a commit) must not count. It returns the
   * partitions stored below their floor: Postgres lost commits. A floor lowered meanwhile (a
   * log reset, which rewinds the stored position too) counts at its new value, and a partition
   * no longer held is passed: the old floor would take the rewind for a loss, and stop the
   * process for nothing.
   */
  floorCheck(partitions: readonly number[]): (stored: ReadonlyMap<number, bigint>) => { partition: number; stored: bigint | undefined; floor: bigint }[] {
    const before = this.floorsOf(partitions);
    const generation = this.generation;
    const loadingBefore = this.loading > 0;
    return (stored) => {
      // Nothing is checked across a join's load: it sets every floor anew from Postgres, and
      // until then a partition just assigned may carry this member's floor of an earlier
      // join, from before another member moved its stored position back (a log reset), which
      // read as lost commits and ended the process.
      if (loadingBefore || this.loading > 0 || generation !== this.generation) return [];
      return [...before].flatMap(([partition, floorBefore]) => {
        const floorNow = this.floors.get(partition);
        if (floorNow === undefined) return [];
        const floor = floorNow < floorBefore ? floorNow : floorBefore;
        const at = stored.get(partition);
        return at === undefined || at < floor ? [{ partition, stored: at, floor }] : [];
      });
    };
  }

  /** Postgres holds `nextOffset` for the partition now (a commit of this process, or a position read). */
  noteStored(partition: number, nextOffset: bigint): void {
    if ((this.floors.get(partition) ?? -1n) < nextOffset) this.floors.set(partition, nextOffset);
  }

  /** The position Postgres is known to hold at least for the partition, if any (see `floors`). */
  floorOf(partition: number): bigint | undefined {
    return this.floors.get(partition);
  }
}

/**
 * Every fetch waiting for room in a lane listens on its signal (up to
 * INGEST_PARTITIONS_CONCURRENCY, 64, at once): past Node's default of 10 listeners it would
 * warn of a leak that is not one (each wait takes its listener away).
 */
function rejoinController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}
