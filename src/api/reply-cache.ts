/**
 * Shared answers for identical reads: while one leaderboard query of a hunt is in flight,
 * every other request for the same hunt and limit waits for it instead of querying too, and
 * its answer (already serialized) is reused for `ttlMs` after. Two hundred clients polling
 * the same leaderboard then cost Postgres one query per interval, not two hundred, and the
 * process one JSON serialization. A reply is at most `ttlMs` older than the newest commit
 * (plus the query's own time, as any read racing a commit), and never older than what this
 * process has pushed to the hunt's live streams: before a push is written, the hunt's answers
 * whose queries began before the pushed read are dropped (`invalidate`), those still being
 * made too. At most once per stream window (100 ms) per hunt with streams: on every commit,
 * a busy hunt's answers would hardly ever be shared.
 */

export interface CachedReply {
  status: number;
  /** Serialized once, sent as is to every client that shares it. */
  body: string;
  contentType?: string;
}

interface Entry {
  /** What `invalidate` drops it by (a hunt), if anything. */
  group: string | undefined;
  /** When its query began (performance.now()). */
  startedAt: number;
  settledAt: number | undefined;
  reply: Promise<CachedReply>;
  bytes: number;
}

export class ReplyCache {
  private readonly entries = new Map<string, Entry>();
  /** The keys of each group's entries. */
  private readonly groups = new Map<string, Set<string>>();
  private bytes = 0;

  constructor(
    private readonly ttlMs: number,
    /** Keys (hunt ids, limits) come from clients: the map is cleared rather than allowed to grow past this. */
    private readonly maxEntries = 10_000,
    /** Nor past this many bytes of answers: 1,000 limits of a 1,000-player board are 60 MB. */
    private readonly maxBytes = 32 * 1024 * 1024,
  ) {}

  /** Answers held (for tests and metrics). */
  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  /** The answer for `key`, shared, or made by `compute`; `group`: what `invalidate` drops it by. */
  get(key: string, compute: () => Promise<CachedReply>, group?: string): Promise<CachedReply> {
    const now = performance.now();
    const found = this.entries.get(key);
    if (found && (found.settledAt === undefined || now - found.settledAt < this.ttlMs)) return found.reply;
    if (found) this.forget(key, found);
    if (this.entries.size >= this.maxEntries || this.bytes >= this.maxBytes) this.clear();
    const entry: Entry = { group, startedAt: now, settledAt: undefined, reply: compute(), bytes: 0 };
    this.entries.set(key, entry);
    if (group !== undefined) {
      const keys = this.groups.get(group) ?? new Set<string>();
      keys.add(key);
      this.groups.set(group, keys);
    }
    entry.reply.then(
      (reply) => {
        entry.settledAt = performance.now();
        if (this.entries.get(key) !== entry) return;
        if (this.ttlMs === 0) return this.forget(key, entry);
        entry.bytes = reply.body.length;
        this.bytes += entry.bytes;
        // Expired answers go when they expire, not when the map fills: each can be large.
        setTimeout(() => this.forget(key, entry), this.ttlMs).unref();
      },
      // A failure is not shared after the fact: the next request tries again.
      () => this.forget(key, entry),
    );
    return entry.reply;
  }

  /**
   * Drops the answers of `groups` whose queries began before `startedBefore` (performance.now()),
   * those still running too: requests from now on query again, while those already waiting
   * keep their answer.
   */
  invalidate(groups: readonly string[], startedBefore: number): void {
    for (const group of groups) {
      for (const key of this.groups.get(group) ?? []) {
        const entry = this.entries.get(key);
        if (entry && entry.startedAt < startedBefore) this.forget(key, entry);
      }
    }
  }

  private forget(key: string, entry: Entry): void {
    if (this.entries.get(key) !== entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
    if (entry.group === undefined) return;
    const keys = this.groups.get(entry.group);
    keys?.delete(key);
    if (keys?.size === 0) this.groups.delete(entry.group);
  }

  private clear(): void {
    this.entries.clear();
    this.groups.clear();
    this.bytes = 0;
  }
}
