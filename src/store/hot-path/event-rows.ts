/**
 * Accepted events as the store-and-score statement reads them: flat JSON rows, one per event
 * in arrival order, kept as one string per group of events.
 *
 * Why a string and not objects: the hot path holds a micro-batch in memory from the moment
 * it is classified until it commits (a few hundred milliseconds under load), long enough for
 * V8 to promote whatever it holds to the old generation. Thousands of event objects per batch
 * made the heap grow to four times what was live; one string per slice of records is a
 * single object, cheap to keep and free to trace. The parsed events die young, right after
 * classification.
 */
import { occurredAtToMicros, type HuntEvent } from '../../events/schema';

export interface EventRows {
  /** The rows' JSON objects, joined by ','. */
  readonly json: string;
  /** End of each row in `json` (exclusive); row i starts after the ',' that ends row i-1. */
  readonly ends: Uint32Array;
  /** Index into `huntIds` of each row's hunt. */
  readonly huntOf: Uint32Array;
  /** The distinct hunts of the rows. */
  readonly huntIds: readonly string[];
}

export const NO_ROWS: EventRows = { json: '', ends: new Uint32Array(0), huntOf: new Uint32Array(0), huntIds: [] };

export function rowCount(rows: EventRows): number {
  return rows.ends.length;
}

/**
 * One event as a row: payload flattened to the few typed fields the contract allows
 * (`s`: the clue or treasure; `n`: points or penalty; `d`, `m`: display name, team).
 */
export function eventRow(event: HuntEvent, source: string): string {
  const p = event.payload as { clueId?: string; treasureId?: string; points?: number; penalty?: number; displayName?: string; teamId?: string };
  return JSON.stringify({
    e: event.eventId,
    h: event.huntId,
    p: event.playerId,
    t: event.type,
    // Microseconds, cut as the consumer cuts them: Postgres would round the digits past the sixth.
    o: occurredAtToMicros(event.occurredAt),
    s: p.clueId ?? p.treasureId,
    n: p.points ?? p.penalty,
    d: p.displayName,
    m: p.teamId,
    src: source,
  });
}

/** Collects rows; `build` makes the EventRows. */
export class EventRowsBuilder {
  private readonly parts: string[] = [];
  private readonly ends: number[] = [];
  private readonly huntOf: number[] = [];
  private readonly hunts = new Map<string, number>();
  private length = 0;

  add(row: string, huntId: string): void {
    if (this.parts.length > 0) this.length += 1; // the ','
    this.parts.push(row);
    this.length += row.length;
    this.ends.push(this.length);
    let hunt = this.hunts.get(huntId);
    if (hunt === undefined) {
      hunt = this.hunts.size;
      this.hunts.set(huntId, hunt);
    }
    this.huntOf.push(hunt);
  }

  build(): EventRows {
    return { json: this.parts.join(','), ends: Uint32Array.from(this.ends), huntOf: Uint32Array.from(this.huntOf), huntIds: [...this.hunts.keys()] };
  }
}

export function rowsOf(events: readonly { event: HuntEvent; source: string }[]): EventRows {
  const builder = new EventRowsBuilder();
  for (const { event, source } of events) builder.add(eventRow(event, source), event.huntId);
  return builder.build();
}

/** The JSON of row i. */
export function rowAt(rows: EventRows, i: number): string {
  const start = i === 0 ? 0 : (rows.ends[i - 1] as number) + 1;
  return rows.json.slice(start, rows.ends[i]);
}

/** Rows [from, to) as their own EventRows (a substring: contiguous rows stay joined by ','). */
export function sliceRows(rows: EventRows, from: number, to: number): EventRows {
  if (from === 0 && to === rows.ends.length) return rows;
  const start = from === 0 ? 0 : (rows.ends[from - 1] as number) + 1;
  const end = to === 0 ? 0 : (rows.ends[to - 1] as number);
  const ends = rows.ends.slice(from, to).map((e) => e - start);
  // Hunt indexes stay pointing into the same hunt list: the fence may lock a hunt more than needed, which is harmless.
  return { json: rows.json.slice(start, end), ends, huntOf: rows.huntOf.slice(from, to), huntIds: rows.huntIds };
}

/**
 * The same rows with `huntIds` narrowed to the hunts they hold (sliceRows keeps the whole
 * list): a part of a micro-batch committed on its own takes the fences of its own hunts only.
 */
export function withOwnHunts(rows: EventRows): EventRows {
  const renumbered = new Map<number, number>();
  const huntIds: string[] = [];
  const huntOf = rows.huntOf.map((hunt) => {
    let own = renumbered.get(hunt);
    if (own === undefined) {
      own = huntIds.length;
      renumbered.set(hunt, own);
      huntIds.push(rows.huntIds[hunt] as string);
    }
    return own;
  });
  return { ...rows, huntOf, huntIds };
}

/** Several EventRows as one, in order. */
export function concatRows(parts: readonly EventRows[]): EventRows {
  const nonEmpty = parts.filter((p) => p.ends.length > 0);
  if (nonEmpty.length === 0) return NO_ROWS;
  if (nonEmpty.length === 1) return nonEmpty[0] as EventRows;
  const total = nonEmpty.reduce((n, p) => n + p.ends.length, 0);
  const ends = new Uint32Array(total);
  const huntOf = new Uint32Array(total);
  const hunts = new Map<string, number>();
  let at = 0;
  let offset = 0;
  for (const part of nonEmpty) {
    const remap = part.huntIds.map((h) => {
      let i = hunts.get(h);
      if (i === undefined) {
        i = hunts.size;
        hunts.set(h, i);
      }
      return i;
    });
    for (let i = 0; i < part.ends.length; i++) {
      ends[at] = (part.ends[i] as number) + offset;
      huntOf[at] = remap[part.huntOf[i] as number] as number;
      at++;
    }
    offset += part.json.length + 1;
  }
  return { json: nonEmpty.map((p) => p.json).join(','), ends, huntOf, huntIds: [...hunts.keys()] };
}

/**
 * The rows split into `groups` by hunt, each keeping its order: `groupOf` maps a hunt to its
 * group, or to -1 to leave its rows out; `skip` leaves single rows out. Each group also lists
 * which rows it took.
 */
export function groupRowsByHunt(
  rows: EventRows,
  groups: number,
  groupOf: (huntId: string) => number,
  skip?: ReadonlySet<number>,
): { rows: EventRows; taken: number[] }[] {
  const groupOfHunt = rows.huntIds.map(groupOf);
  const builders = Array.from({ length: groups }, () => ({ builder: new EventRowsBuilder(), taken: [] as number[] }));
  for (let i = 0; i < rows.ends.length; i++) {
    const hunt = rows.huntOf[i] as number;
    const group = groupOfHunt[hunt] as number;
    if (group < 0 || skip?.has(i)) continue;
    const target = builders[group] as { builder: EventRowsBuilder; taken: number[] };
    target.builder.add(rowAt(rows, i), rows.huntIds[hunt] as string);
    target.taken.push(i);
  }
  return builders.map((b) => ({ rows: b.builder.build(), taken: b.taken }));
}

/** FNV-1a of a hunt id modulo `groups`: how a chunk's hunts are spread over commit lanes. */
export function laneOfHunt(huntId: string, groups: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < huntId.length; i++) hash = Math.imul(hash ^ huntId.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % groups;
}

/**
 * The eventId of row i, read from the front of its JSON without parsing the rest: eventRow
 * writes it first, as `{"e":"…"`, and inside a JSON string every '"' is escaped.
 */
export function eventIdAt(rows: EventRows, i: number): string {
  const start = i === 0 ? 0 : (rows.ends[i - 1] as number) + 1;
  const end = rows.ends[i] as number;
  const open = start + 5; // after {"e":
  let at = open + 1;
  for (; at < end; at++) {
    const c = rows.json.charCodeAt(at);
    if (c === 92 /* \ */) at++;
    else if (c === 34 /* " */) break;
  }
  // Parsed, not sliced: a slice of `json` would keep the whole batch's text alive as long as the id lives.
  return JSON.parse(rows.json.slice(open, at + 1)) as string;
}

