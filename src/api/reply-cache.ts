/**
 * Shared answers for identical reads: while one leaderboard query of a hunt is in flight,
 * every other request for the same hunt and limit waits for it instead of querying too, and
 * its answer (already serialized) is reused for `ttlMs` after. Two hundred clients polling
 * the same leaderboard then cost Postgres one query per interval, not two hundred, and the
 * process one JSON serialization. A reply is at most `ttlMs` older than the newest commit
 * (plus the query's own time, as any read racing a commit).
 */

export interface CachedReply {
  status: number;
  /** Serialized once, sent as is to every client that shares it. */
  body: string;
  contentType?: string;
}

interface Entry {
  settledAt: number | undefined;
  reply: Promise<CachedReply>;
}

export class ReplyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs: number,
    /** Hunt ids come from clients: the map is cleared rather than allowed to grow past this. */
    private readonly maxEntries = 10_000,
  ) {}

  get(key: string, compute: () => Promise<CachedReply>): Promise<CachedReply> {
    const now = performance.now();
    const found = this.entries.get(key);
    if (found && (found.settledAt === undefined || now - found.settledAt < this.ttlMs)) return found.reply;
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    const entry: Entry = { settledAt: undefined, reply: compute() };
    this.entries.set(key, entry);
    entry.reply.then(
      () => {
        entry.settledAt = performance.now();
        if (this.ttlMs === 0 && this.entries.get(key) === entry) this.entries.delete(key);
      },
      // A failure is not shared after the fact: the next request tries again.
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return entry.reply;
  }
}
