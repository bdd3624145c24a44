/**
 * The messages of the live leaderboard streams (CONTRACT.md §2): `event: leaderboard` whose
 * `data:` is exactly the leaderboard endpoint's JSON of the page.
 */

/** A leaderboard page, as the endpoint answers it. */
export interface LeaderboardBody {
  huntId: string;
  asOf: string | null;
  entries: unknown[];
}

/** The page's message, as the endpoint would serialize the page. */
export function messageOf(body: LeaderboardBody): string {
  return `event: leaderboard\ndata: ${JSON.stringify(body)}\n\n`;
}

/** Stands for the entries in a page serialized without them; JSON escapes its NULs, so no page holds it. */
const ENTRIES_MARK = '\u0000entries\u0000';
const ENTRIES_MARK_JSON = JSON.stringify(ENTRIES_MARK);

/**
 * A hunt's page as the message of each limit in `limits`, byte for byte as messageOf of the
 * page cut to the limit. Each entry is serialized once, and the messages are built from the
 * smallest limit up, each extending the one before (V8 joins strings without copying them
 * until one is written): the limits are the clients' choice (1-1000), and a page serialized
 * whole per limit let 768 streams of distinct limits on one hunt make a window serialize
 * 295,000 entries, on the event loop the hot path runs on.
 */
export function pageMessages(body: LeaderboardBody, limits: Iterable<number>): Map<number, string> {
  const framed = messageOf({ ...body, entries: ENTRIES_MARK as unknown as unknown[] });
  const at = framed.indexOf(ENTRIES_MARK_JSON);
  const [head, tail] = [`${framed.slice(0, at)}[`, `]${framed.slice(at + ENTRIES_MARK_JSON.length)}`];
  const messages = new Map<number, string>();
  let entries = '';
  let count = 0;
  for (const limit of [...new Set(limits)].sort((a, b) => a - b)) {
    for (; count < Math.min(limit, body.entries.length); count++) entries += (count > 0 ? ',' : '') + (JSON.stringify(body.entries[count]) ?? 'null');
    messages.set(limit, head + entries + tail);
  }
  return messages;
}
