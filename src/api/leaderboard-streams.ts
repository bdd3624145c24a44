/**
 * Live leaderboards as Server-Sent Events (CONTRACT.md §2): a message `event: leaderboard`
 * with exactly the leaderboard endpoint's JSON, once on connect and again after every
 * committed change to the hunt, at most one per 100 ms per stream; a comment line every 15 s
 * keeps idle streams open.
 *
 * One change feed feeds every stream (change-listener.ts). A change marks its hunt; the hunt
 * is read once for all its streams (with the largest limit they asked for), at most every
 * 100 ms, and each stream gets its slice. A slow client never holds memory: a stream whose
 * socket is not draining keeps only the latest message, sent when it drains.
 */
import type http from 'node:http';
import type { Logger } from '../log';
import { ALL_HUNTS } from '../store/hunt-changes';

export interface LeaderboardBody {
  huntId: string;
  asOf: string | null;
  entries: unknown[];
}

export interface StreamOptions {
  /** The leaderboard of a hunt (an unknown hunt: no entries, asOf null). */
  read: (huntId: string, limit: number) => Promise<LeaderboardBody>;
  logger: Logger;
  minIntervalMs?: number;
  heartbeatMs?: number;
  onCountChange?: (open: number) => void;
}

interface Stream {
  res: http.ServerResponse;
  limit: number;
  lastSentAt: number;
  /** The latest message not yet written (throttled or waiting for the socket to drain). */
  pending: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

interface HuntState {
  streams: Set<Stream>;
  /** A read of the hunt is running or scheduled. */
  refreshing: boolean;
  /** A change arrived while a read ran: read again after it. */
  again: boolean;
  lastReadAt: number;
}

export class LeaderboardStreams {
  private readonly hunts = new Map<string, HuntState>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly minIntervalMs: number;
  private open = 0;

  constructor(private readonly options: StreamOptions) {
    this.minIntervalMs = options.minIntervalMs ?? 100;
    this.heartbeat = setInterval(() => this.beat(), options.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  get streams(): number {
    return this.open;
  }

  /** Starts a stream on `res` for `huntId`; the first message follows as soon as it is read. */
  subscribe(huntId: string, limit: number, req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const stream: Stream = { res, limit, lastSentAt: 0, pending: undefined, timer: undefined };
    const hunt = this.stateOf(huntId);
    hunt.streams.add(stream);
    this.setOpen(this.open + 1);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearTimeout(stream.timer);
      hunt.streams.delete(stream);
      if (hunt.streams.size === 0 && !hunt.refreshing) this.hunts.delete(huntId);
      this.setOpen(this.open - 1);
    };
    req.once('close', close);
    res.once('close', close);
    res.on('drain', () => this.flush(stream));
    this.options
      .read(huntId, limit)
      .then((body) => this.deliver(stream, messageOf(body)))
      .catch((err: unknown) => {
        this.options.logger.warn({ err, huntId }, 'live leaderboard: first read failed; closing the stream');
        res.end();
      });
  }

  /** A committed change: the hunts named (or every hunt with a stream) are read again. */
  changed(hunts: readonly string[] | typeof ALL_HUNTS): void {
    const names = hunts === ALL_HUNTS ? [...this.hunts.keys()] : hunts;
    for (const huntId of names) {
      const hunt = this.hunts.get(huntId);
      if (!hunt || hunt.streams.size === 0) continue;
      if (hunt.refreshing) hunt.again = true;
      else this.scheduleRead(huntId, hunt);
    }
  }

  /** Ends every stream (shutdown). */
  close(): void {
    clearInterval(this.heartbeat);
    for (const hunt of this.hunts.values()) for (const stream of hunt.streams) stream.res.end();
  }

  private stateOf(huntId: string): HuntState {
    let hunt = this.hunts.get(huntId);
    if (!hunt) {
      hunt = { streams: new Set(), refreshing: false, again: false, lastReadAt: 0 };
      this.hunts.set(huntId, hunt);
    }
    return hunt;
  }

  private scheduleRead(huntId: string, hunt: HuntState): void {
    hunt.refreshing = true;
    hunt.again = false;
    const wait = Math.max(0, hunt.lastReadAt + this.minIntervalMs - Date.now());
    setTimeout(() => void this.read(huntId, hunt), wait).unref();
  }

  private async read(huntId: string, hunt: HuntState): Promise<void> {
    hunt.lastReadAt = Date.now();
    const limit = Math.max(0, ...[...hunt.streams].map((s) => s.limit));
    try {
      if (limit > 0) {
        const body = await this.options.read(huntId, limit);
        for (const stream of hunt.streams) this.deliver(stream, messageOf({ ...body, entries: body.entries.slice(0, stream.limit) }));
      }
    } catch (err) {
      // The next change reads again; the streams keep their last message meanwhile.
      this.options.logger.warn({ err, huntId }, 'live leaderboard: read failed');
    } finally {
      hunt.refreshing = false;
      if (hunt.streams.size === 0) this.hunts.delete(huntId);
      else if (hunt.again) this.scheduleRead(huntId, hunt);
    }
  }

  /** Sends now, or keeps it as the stream's next message (throttled, or the socket is full). */
  private deliver(stream: Stream, message: string): void {
    stream.pending = message;
    this.flush(stream);
  }

  private flush(stream: Stream): void {
    if (stream.pending === undefined || stream.res.writableEnded) return;
    if (stream.res.writableNeedDrain) return; // 'drain' calls back
    const wait = stream.lastSentAt + this.minIntervalMs - Date.now();
    if (wait > 0) {
      stream.timer ??= setTimeout(() => {
        stream.timer = undefined;
        this.flush(stream);
      }, wait);
      return;
    }
    const message = stream.pending;
    stream.pending = undefined;
    stream.lastSentAt = Date.now();
    stream.res.write(message);
  }

  private beat(): void {
    for (const hunt of this.hunts.values()) {
      for (const stream of hunt.streams) if (!stream.res.writableNeedDrain) stream.res.write(': keep-alive\n\n');
    }
  }

  private setOpen(open: number): void {
    this.open = open;
    this.options.onCountChange?.(open);
  }
}

function messageOf(body: LeaderboardBody): string {
  return `event: leaderboard\ndata: ${JSON.stringify(body)}\n\n`;
}
