/**
 * Live leaderboards as Server-Sent Events (CONTRACT.md §2): a message `event: leaderboard`
 * with exactly the leaderboard endpoint's JSON, once on connect and again after every
 * committed change to the hunt, at most one per 100 ms per stream; a comment line every 15 s
 * keeps idle streams open.
 *
 * One change feed feeds every stream (change-listener.ts). A change marks its hunt; every
 * 100 ms at most, the marked hunts are read together, in one statement for up to
 * HUNTS_PER_READ hunts and ENTRIES_PER_READ entries, each hunt with the largest limit its
 * streams asked for, and each stream gets its slice: the cost follows the number of changed
 * hunts per window, not of streams.
 * Windows are spaced from the end of one delivery to the start of the next read, by 100 ms or
 * four times the delivery's own time if longer (WINDOW_WORK_SHARE), so a
 * stream's messages from consecutive windows are always 100 ms apart and never wait; a
 * stream that must wait (its first message came between windows) is sent with the next
 * window after its 100 ms, which puts it back in step with the windows.
 * A slow client never holds memory: a stream whose socket is not draining keeps only the
 * latest message, sent when it drains, and one that has not drained for two heartbeats is
 * closed (counted; a live client reconnects). A client that reads, however slowly, is not:
 * it gets fewer messages, each as old as the socket's buffers make it. A window serializes
 * each entry of a hunt's page once, and makes one message per limit asked for, shared by
 * every stream of that limit, so the work on the event loop (which ingest shares) follows
 * hunts and the bytes of the limits asked for, not streams. Streams that connect together
 * (a reconnect storm after a restart) share their first read while no change has come in
 * since it started.
 * A stream whose first read fails is closed (counted: `hunt_api_stream_first_reads_failed_total`)
 * unless a window fed it meanwhile, and its client reconnects.
 * A read that fails is tried again in the next window; the hunts of a failed read are read
 * alone until they succeed, so one hunt whose read always fails cannot hold back the others
 * read with it, and is tried less and less often (counted: `hunt_api_stream_hunts_failing`).
 * A read that fails because the database is away or the pool has no free connection
 * (failsEveryStatement) is no hunt's fault: the window ends there, its hunts stay marked and
 * grouped, and windows space out to at most OUTAGE_BACKOFF_MAX_MS apart until a read works.
 * Counted against each hunt, such an outage pushed every stream's next try 30 s away, and
 * streams stayed stale that long after the database came back.
 */
import type http from 'node:http';
import { backoffMs } from '../backoff';
import { groupsWithin } from '../byte-budget';
import type { Logger } from '../log';
import { ALL_HUNTS } from '../store/hunt-changes';
import { failsEveryStatement } from '../store/outage';
import { messageOf, pageMessages, type LeaderboardBody } from './stream-messages';
import { everyFewSeconds } from './throttle';

export type { LeaderboardBody };

export type LeaderboardRequest = { huntId: string; limit: number };

export interface StreamOptions {
  /** The leaderboards asked for, read together; an unknown hunt is absent from the answer. */
  read: (requests: readonly LeaderboardRequest[]) => Promise<Map<string, LeaderboardBody>>;
  logger: Logger;
  minIntervalMs?: number;
  heartbeatMs?: number;
  /**
   * Told, just before a read's pages are written to the hunts' streams, which hunts and when
   * that read began (performance.now()): the reply cache drops what is older.
   */
  onDelivering?: (huntIds: readonly string[], readStartedAt: number) => void;
  /** Bytes of messages the streams' sockets may hold unsent, all streams together (default UNSENT_BUDGET_BYTES). */
  unsentBudgetBytes?: number;
}

/**
 * Message bytes that sockets whose clients do not read may hold in this process, all streams
 * together. A client that stops reading is cut after two heartbeats, but until then its
 * socket holds the last message written, a whole page: 768 streams (the default cap) of
 * 1,000-entry pages that no one reads held 200-500 MB beside the hot path. Past the budget,
 * messages wait as each stream's newest (shared with the streams of its window), and go out
 * as sockets drain or close.
 */
export const UNSENT_BUDGET_BYTES = 32 * 1024 * 1024;

/** Hunts per read statement: bounds one statement's work when very many hunts change at once. */
const HUNTS_PER_READ = 500;
/**
 * Leaderboard entries per read statement (the sum of the hunts' limits). 500 hunts read at
 * limit 1000 took 5.7 s, past the API's statement timeout: the window failed, its hunts were
 * marked again, and every window after it failed the same way. 50,000 entries take well
 * under a second.
 */
export const ENTRIES_PER_READ = 50_000;
/** The most of the event loop a window's delivery may take, on average: a window that took 40 ms waits 160 ms before the next. */
const WINDOW_WORK_SHARE = 0.2;
/** The longest a hunt whose reads keep failing waits between tries. */
const FAILING_READ_BACKOFF_MAX_MS = 30_000;
/** The longest wait between windows while reads fail for the database (below the change feed's 2 s lag after a reconnect). */
const OUTAGE_BACKOFF_MAX_MS = 1_000;
/** What readOrRemark returns for a read that failed for the database, not its hunts. */
const OUTAGE = Symbol('outage');

/**
 * How long a client refused a stream waits before it asks again, drawn anew for each refusal
 * so that clients refused together (a cap reached at a game's start) come back spread out.
 */
export const REFUSED_STREAM_RETRY_MS = { min: 2_000, max: 10_000 } as const;

/**
 * The body of a refused stream: `retry:` and the reason as a comment. Sent with a 200 and
 * ended, because an EventSource closes for good on any other status (the browsers' and the
 * npm one alike) and comes back after `retry:` when a stream ends: a 503 at the streams' cap
 * turned every standard client away until its page was reloaded. A comment, not an event:
 * clients see only the `leaderboard` events the contract names.
 */
export function refusedStreamBody(reason: string, random: () => number = Math.random): string {
  const { min, max } = REFUSED_STREAM_RETRY_MS;
  return `retry: ${Math.round(min + random() * (max - min))}\n: ${reason.replace(/[\r\n]+/g, ' ')}\n\n`;
}

/** A live stream's headers (a HEAD of its path gets them too). */
export const STREAM_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

interface Stream {
  res: http.ServerResponse;
  limit: number;
  /** The window count when it subscribed: reads started before it never reach it. */
  since: number;
  /** Something was delivered: the first read, if it ends later, is older and is dropped. */
  started: boolean;
  lastSentAt: number;
  /** The latest message not yet written (throttled or waiting for the socket to drain); shared with the window's other streams. */
  pending: string | undefined;
  timer: NodeJS.Timeout | undefined;
  /** When a heartbeat first found the socket full (undefined: it drains). */
  blockedSince: number | undefined;
}

interface HuntState {
  streams: Set<Stream>;
  /** Counts changes heard, so a first read started before a change is not shared after it. */
  changes: number;
  /** First reads in flight, by limit, as the message they make. */
  firstReads: Map<number, FirstRead>;
}

interface FirstRead {
  /** The hunt's change count when it began. */
  changes: number;
  message: Promise<string>;
  /** When it began (performance.now()). */
  startedAt: number;
}

export class LeaderboardStreams {
  private readonly hunts = new Map<string, HuntState>();
  /** Hunts changed since their last read. */
  private readonly marked = new Set<string>();
  /**
   * Hunts of a failed read, read alone (not with others) until a read of theirs succeeds;
   * `failures` counts the failed reads of the hunt alone, and sets when it is tried next.
   */
  private readonly failing = new Map<string, { failures: number; retryAt: number }>();
  private readFailures = 0;
  /** Windows in a row that ended on a read failing for the database (failsEveryStatement). */
  private outageWindows = 0;
  private failedFirstReads = 0;
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly minIntervalMs: number;
  private open = 0;
  private reading = false;
  private readTimer: NodeJS.Timeout | undefined;
  /** When the last window's delivery ended: the next read starts gapMs after. */
  private lastWindowAt = -Infinity;
  /** minIntervalMs, or more after a window whose delivery kept the event loop busy (WINDOW_WORK_SHARE). */
  private gapMs: number;
  /** Streams with a message held back by the 100 ms rule. */
  private readonly throttled = new Set<Stream>();
  /** Streams whose socket held a message unsent after its write, and how many bytes it then held. */
  private readonly unsent = new Map<Stream, number>();
  private unsentBytes = 0;
  /** Streams with a message waiting because `unsent` is over budget, in the order they came. */
  private readonly heldForBudget = new Set<Stream>();
  private readonly unsentBudgetBytes: number;
  /** Counts read windows. */
  private windows = 0;
  private droppedSlow = 0;
  private readonly heartbeatMs: number;
  // While Postgres is away every stream's first read and every window fails: a line each
  // would flood the log of the process ingest runs in.
  private readonly warnFirstReadFailed = everyFewSeconds((count: number, err: unknown, huntId: string) =>
    this.options.logger.warn({ err, huntId, count }, 'live leaderboard: first read failed; closing the stream (the client reconnects)'),
  );
  private readonly warnWindowFailed = everyFewSeconds((count: number, err: unknown, hunts: number) =>
    this.options.logger.warn({ err, hunts, count }, 'live leaderboard: read failed; trying again in the next window'),
  );

  private readonly reportWindowFault = everyFewSeconds((count: number, err: unknown, hunts: number) =>
    this.options.logger.error({ err, hunts, count }, 'live leaderboard: a read window failed; trying its hunts again in the next window'),
  );

  constructor(private readonly options: StreamOptions) {
    this.minIntervalMs = options.minIntervalMs ?? 100;
    this.gapMs = this.minIntervalMs;
    this.heartbeatMs = options.heartbeatMs ?? 10_000;
    this.unsentBudgetBytes = options.unsentBudgetBytes ?? UNSENT_BUDGET_BYTES;
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatMs);
    this.heartbeat.unref();
  }

  get streams(): number {
    return this.open;
  }

  /** Streams closed because their client stopped reading. */
  get slowStreamsDropped(): number {
    return this.droppedSlow;
  }

  /** Streams closed because their first read failed, no window having fed them (a running total). */
  get firstReadFailures(): number {
    return this.failedFirstReads;
  }

  /** Window reads that failed (a running total). */
  get failedReads(): number {
    return this.readFailures;
  }

  /** Hunts whose streams get no changes because their own read fails, alone. */
  get huntsFailing(): number {
    let count = 0;
    for (const { failures } of this.failing.values()) if (failures > 0) count++;
    return count;
  }

  /**
   * Starts a stream on `res` for `huntId`; the first message follows as soon as it is read. The
   * 200 goes out at once, not after the first read: EventSource gives up for good on any other
   * status, where a stream closed after its 200 is reconnected (`retry`). A first read that
   * fails closes the stream and is counted (`firstReadFailures`): the 200 alone said nothing.
   */
  subscribe(huntId: string, limit: number, req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, STREAM_HEADERS);
    res.write('retry: 2000\n\n');
    const stream: Stream = { res, limit, since: this.windows, started: false, lastSentAt: -Infinity, pending: undefined, timer: undefined, blockedSince: undefined };
    const hunt = this.stateOf(huntId);
    hunt.streams.add(stream);
    this.open++;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearTimeout(stream.timer);
      this.throttled.delete(stream);
      this.heldForBudget.delete(stream);
      this.release(stream);
      hunt.streams.delete(stream);
      if (hunt.streams.size === 0 && this.hunts.get(huntId) === hunt) {
        this.hunts.delete(huntId);
        this.marked.delete(huntId);
        this.failing.delete(huntId);
      }
      this.open--;
    };
    req.once('close', close);
    res.once('close', close);
    res.on('drain', () => {
      // It reads: only a socket that stays full a whole two heartbeats is a client gone. A
      // client reading slower than its messages come (a large limit on a slow link) drains
      // now and then, each drain at once refilled with the newest message; it gets fewer
      // messages, and was cut as one that stopped reading.
      stream.blockedSince = undefined;
      this.release(stream);
      this.flush(stream);
    });
    const first = this.firstRead(huntId, hunt, limit);
    first.message
      .then((message) => {
        if (stream.started) return;
        this.options.onDelivering?.([huntId], first.startedAt);
        this.deliver(stream, message);
      })
      .catch((err: unknown) => {
        // A window may have delivered meanwhile: the stream is live, and stays. One its client
        // left, or shutdown ended, failed no one.
        if (stream.started || closed || this.closed) return;
        this.warnFirstReadFailed(err, huntId);
        // Out of the registry at once: an ended response's 'close' waits for a slow client
        // to take what is buffered, and a heartbeat written to it before then would be an
        // error nobody handles (the process's end).
        this.failedFirstReads++;
        close();
        res.end();
      });
  }

  /** A committed change: the hunts named (or every hunt with a stream) are read in the next window. */
  changed(hunts: readonly string[] | typeof ALL_HUNTS): void {
    const names = hunts === ALL_HUNTS ? [...this.hunts.keys()] : hunts;
    for (const huntId of names) {
      const hunt = this.hunts.get(huntId);
      if (!hunt) continue;
      hunt.changes++;
      this.marked.add(huntId);
    }
    this.scheduleRead();
  }

  /** Ends every stream (shutdown); no read is started after. */
  close(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.readTimer);
    for (const hunt of this.hunts.values()) for (const stream of hunt.streams) stream.res.end();
  }

  private stateOf(huntId: string): HuntState {
    let hunt = this.hunts.get(huntId);
    if (!hunt) {
      hunt = { streams: new Set(), changes: 0, firstReads: new Map() };
      this.hunts.set(huntId, hunt);
    }
    return hunt;
  }

  /** The first message of a stream of `limit`, and when its read began; shared while no change came in since. */
  private firstRead(huntId: string, hunt: HuntState, limit: number): FirstRead {
    const shared = hunt.firstReads.get(limit);
    if (shared && shared.changes === hunt.changes) return shared;
    const startedAt = performance.now();
    const message = this.options.read([{ huntId, limit }]).then((pages) => messageOf(pages.get(huntId) ?? emptyBoard(huntId)));
    const entry = { changes: hunt.changes, message, startedAt };
    hunt.firstReads.set(limit, entry);
    const forget = () => {
      if (hunt.firstReads.get(limit) === entry) hunt.firstReads.delete(limit);
    };
    message.then(forget, forget);
    return entry;
  }

  /** One read window at a time, at most one per minIntervalMs. */
  private scheduleRead(): void {
    if (this.closed || this.reading || this.readTimer || this.marked.size === 0) return;
    const wait = Math.max(0, this.lastWindowAt + this.gapMs - performance.now());
    this.readTimer = setTimeout(() => {
      this.readTimer = undefined;
      void this.readMarked();
    }, wait);
    this.readTimer.unref();
  }

  private async readMarked(): Promise<void> {
    this.reading = true;
    const window = ++this.windows;
    const huntIds = [...this.marked];
    this.marked.clear();
    let deliveryMs = 0;
    let outage = false;
    try {
      const wanted: LeaderboardRequest[] = [];
      const alone: LeaderboardRequest[][] = [];
      const now = performance.now();
      for (const huntId of huntIds) {
        const hunt = this.hunts.get(huntId);
        if (!hunt || hunt.streams.size === 0) continue;
        const request = { huntId, limit: largestLimit(hunt.streams) };
        const failing = this.failing.get(huntId);
        if (!failing) wanted.push(request);
        else if (failing.retryAt <= now) alone.push([request]);
        else this.marked.add(huntId); // its next try is later
      }
      const reads = [...groupsWithin(wanted, ENTRIES_PER_READ, (r) => r.limit, HUNTS_PER_READ), ...alone];
      for (const [i, requests] of reads.entries()) {
        const readStartedAt = performance.now();
        const pages = await this.readOrRemark(requests);
        if (pages === OUTAGE) {
          // The rest would fail the same way: read again, as they were, next window.
          for (const later of reads.slice(i + 1)) for (const { huntId } of later) this.marked.add(huntId);
          outage = true;
          break;
        }
        const started = performance.now();
        this.deliverPages(requests, pages, window, readStartedAt);
        deliveryMs += performance.now() - started;
      }
    } catch (err) {
      // A fault of this code, not a failed read (readOrRemark keeps those): its hunts are
      // read again next window, and the process, which runs the hot path too, goes on.
      for (const huntId of huntIds) this.marked.add(huntId);
      this.readFailures++;
      this.reportWindowFault(err, huntIds.length);
    } finally {
      this.lastWindowAt = performance.now();
      // The event loop is the hot path's too: however many streams, hunts and limits the
      // clients open, delivering takes at most this share of it, windows spacing out instead.
      this.gapMs = Math.max(this.minIntervalMs, deliveryMs * (1 / WINDOW_WORK_SHARE - 1));
      this.outageWindows = outage ? this.outageWindows + 1 : 0;
      if (outage) this.gapMs = Math.max(this.gapMs, backoffMs(this.outageWindows - 1, this.minIntervalMs, OUTAGE_BACKOFF_MAX_MS));
      this.reading = false;
      this.flushThrottled();
      this.scheduleRead();
    }
  }

  /**
   * On failure the hunts stay marked, read again next window, each alone: streams keep their
   * last message meanwhile. A hunt that fails alone is tried after a growing wait. A failure
   * of the database (failsEveryStatement) leaves them as they were, and says OUTAGE.
   */
  private async readOrRemark(requests: LeaderboardRequest[]): Promise<Map<string, LeaderboardBody> | undefined | typeof OUTAGE> {
    try {
      const pages = await this.options.read(requests);
      for (const { huntId } of requests) this.failing.delete(huntId);
      return pages;
    } catch (err) {
      this.readFailures++;
      this.warnWindowFailed(err, requests.length);
      if (failsEveryStatement(err)) {
        for (const { huntId } of requests) this.marked.add(huntId);
        return OUTAGE;
      }
      const now = performance.now();
      for (const { huntId } of requests) {
        // Its last stream closed while the read ran: nothing to read again, and it must not
        // stay counted as failing (nothing would ever read it, nor clear it, again).
        if (!this.hunts.get(huntId)?.streams.size) continue;
        this.marked.add(huntId);
        if (requests.length > 1) {
          this.failing.set(huntId, this.failing.get(huntId) ?? { failures: 0, retryAt: now });
        } else {
          const failures = (this.failing.get(huntId)?.failures ?? 0) + 1;
          this.failing.set(huntId, { failures, retryAt: now + backoffMs(failures, this.minIntervalMs, FAILING_READ_BACKOFF_MAX_MS) });
        }
      }
      return undefined;
    }
  }

  private deliverPages(requests: LeaderboardRequest[], pages: Map<string, LeaderboardBody> | undefined, window: number, readStartedAt: number): void {
    if (!pages) return;
    this.options.onDelivering?.(requests.map((r) => r.huntId), readStartedAt);
    for (const { huntId } of requests) {
      const hunt = this.hunts.get(huntId);
      if (!hunt) continue;
      // Streams subscribed after this read began are left out: their first read is newer.
      const due = [...hunt.streams].filter((stream) => stream.since < window);
      const messages = pageMessages(pages.get(huntId) ?? emptyBoard(huntId), due.map((stream) => stream.limit));
      for (const stream of due) this.deliver(stream, messages.get(stream.limit) as string);
    }
  }

  /** Sends now, or keeps it as the stream's next message (throttled, or the socket is full). */
  private deliver(stream: Stream, message: string): void {
    stream.started = true;
    stream.pending = message;
    this.flush(stream);
  }

  private flush(stream: Stream): void {
    if (stream.pending === undefined || stream.res.writableEnded || stream.res.destroyed) return;
    if (stream.res.writableNeedDrain) return; // 'drain' calls back
    const wait = stream.lastSentAt + this.minIntervalMs - performance.now();
    if (wait > 0) {
      // Sent with a window once its wait is over (flushThrottled); the timer is for when no
      // window comes, a window later if one is due.
      this.throttled.add(stream);
      const windowsRunning = this.reading || this.readTimer !== undefined;
      stream.timer ??= setTimeout(
        () => {
          stream.timer = undefined;
          this.flush(stream);
        },
        windowsRunning ? wait + this.minIntervalMs : wait,
      );
      return;
    }
    this.throttled.delete(stream);
    clearTimeout(stream.timer);
    stream.timer = undefined;
    if (this.unsentBytes >= this.unsentBudgetBytes) {
      this.heldForBudget.add(stream); // released by a drain or a close (release)
      this.warnHeldForBudget();
      return;
    }
    const message = stream.pending;
    stream.pending = undefined;
    stream.lastSentAt = performance.now();
    if (stream.res.write(message)) return;
    const held = stream.res.writableLength;
    this.unsent.set(stream, held);
    this.unsentBytes += held;
  }

  /** A stream's socket drained or closed: its bytes leave the budget, and streams held for it go out. */
  private release(stream: Stream): void {
    const bytes = this.unsent.get(stream);
    if (bytes === undefined) return;
    this.unsent.delete(stream);
    this.unsentBytes -= bytes;
    for (const held of this.heldForBudget) {
      if (this.unsentBytes >= this.unsentBudgetBytes) break;
      this.heldForBudget.delete(held);
      this.flush(held);
    }
  }

  private readonly warnHeldForBudget = everyFewSeconds((count: number) =>
    this.options.logger.warn(
      { count, unsentBytes: this.unsentBytes, streams: this.unsent.size },
      'live leaderboard: sockets whose clients do not read hold the streams\' budget of unsent messages; pushes wait until they drain or are cut (two heartbeats)',
    ),
  );

  private flushThrottled(): void {
    const now = performance.now();
    for (const stream of this.throttled) if (now >= stream.lastSentAt + this.minIntervalMs) this.flush(stream);
  }

  /** Keep-alives; a stream whose socket has stayed full for two heartbeats is closed. */
  private beat(now = performance.now()): void {
    let dropped = 0;
    for (const hunt of this.hunts.values()) {
      for (const stream of hunt.streams) {
        if (stream.res.writableEnded || stream.res.destroyed) continue; // its 'close' takes it out
        if (!stream.res.writableNeedDrain) {
          stream.blockedSince = undefined;
          stream.res.write(': keep-alive\n\n');
          continue;
        }
        stream.blockedSince ??= now;
        if (now - stream.blockedSince >= 2 * this.heartbeatMs) {
          dropped++;
          stream.res.destroy(); // its 'close' takes it out of the hunt
        }
      }
    }
    if (dropped > 0) {
      this.droppedSlow += dropped;
      this.options.logger.warn({ dropped }, 'live leaderboard: closed streams whose clients stopped reading for two heartbeats');
    }
  }
}

/** The largest limit of a hunt's streams, in a loop: spread into Math.max, 125,000 of them overflowed the stack. */
function largestLimit(streams: Iterable<Stream>): number {
  let largest = 0;
  for (const { limit } of streams) if (limit > largest) largest = limit;
  return largest;
}

function emptyBoard(huntId: string): LeaderboardBody {
  return { huntId, asOf: null, entries: [] };
}
