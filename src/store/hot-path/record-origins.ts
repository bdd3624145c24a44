/**
 * Where each accepted row of a micro-batch came from, with its bytes, for the rare record the
 * database refuses: it is rejected as `unprocessable` and copied to the DLQ unchanged, so its
 * key and value must still be at hand when the batch commits.
 *
 * The bytes are copied out of the Kafka fetch buffers, one buffer per slice of records:
 * a kept slice of a fetch response would keep the whole response (megabytes) alive until
 * the batch commits.
 */
import type { RecordOrigin } from './quarantine';

export interface RecordOrigins {
  readonly count: number;
  /** The origin of row i. */
  at(i: number): RecordOrigin;
}

/** Origins of records from one source (a topic partition, or a file). */
export class OriginsBuilder {
  private readonly offsets: string[] = [];
  private readonly keys: (Buffer | null)[] = [];
  private readonly values: (Buffer | null)[] = [];

  constructor(
    private readonly topic: string,
    private readonly partition: number,
  ) {}

  add(offset: string, key: Buffer | null, value: Buffer | null): void {
    this.offsets.push(offset);
    this.keys.push(key);
    this.values.push(value);
  }

  build(): RecordOrigins {
    return new PackedOrigins(this.topic, this.partition, this.offsets, pack(this.keys), pack(this.values));
  }
}

interface Packed {
  bytes: Buffer;
  /** End of item i in `bytes`; -1 for a null item. */
  ends: Int32Array;
}

function pack(items: readonly (Buffer | null)[]): Packed {
  const ends = new Int32Array(items.length);
  let length = 0;
  items.forEach((item, i) => {
    if (item === null) ends[i] = -1;
    else {
      length += item.length;
      ends[i] = length;
    }
  });
  return { bytes: Buffer.concat(items.filter((x): x is Buffer => x !== null), length), ends };
}

function unpack(packed: Packed, i: number): Buffer | null {
  const end = packed.ends[i] as number;
  if (end < 0) return null;
  let start = 0;
  for (let j = i - 1; j >= 0; j--) {
    const previous = packed.ends[j] as number;
    if (previous >= 0) {
      start = previous;
      break;
    }
  }
  return Buffer.from(packed.bytes.subarray(start, end));
}

class PackedOrigins implements RecordOrigins {
  constructor(
    private readonly topic: string,
    private readonly partition: number,
    private readonly offsets: readonly string[],
    private readonly keys: Packed,
    private readonly values: Packed,
  ) {}

  get count(): number {
    return this.offsets.length;
  }

  at(i: number): RecordOrigin {
    return { topic: this.topic, partition: this.partition, offset: this.offsets[i] as string, key: unpack(this.keys, i), value: unpack(this.values, i) };
  }
}

/** Several origins as one, rows numbered on. */
export function concatOrigins(parts: readonly RecordOrigins[]): RecordOrigins {
  const nonEmpty = parts.filter((p) => p.count > 0);
  if (nonEmpty.length === 1) return nonEmpty[0] as RecordOrigins;
  const starts: number[] = [];
  let count = 0;
  for (const part of nonEmpty) {
    starts.push(count);
    count += part.count;
  }
  return {
    count,
    at(i) {
      let part = nonEmpty.length - 1;
      while ((starts[part] as number) > i) part--;
      return (nonEmpty[part] as RecordOrigins).at(i - (starts[part] as number));
    },
  };
}

/** Origins of events built in code (tests, replays): their provenance and bytes. */
export function originsOf(items: readonly { source: string; value: Buffer | null }[]): RecordOrigins {
  return {
    count: items.length,
    at: (i) => ({ topic: items[i]?.source ?? 'unknown', partition: 0, offset: '0', key: null, value: items[i]?.value ?? null }),
  };
}

/** The origins of rows [from, to), renumbered from 0. */
export function sliceOrigins(origins: RecordOrigins, from: number, to: number): RecordOrigins {
  if (from === 0 && to === origins.count) return origins;
  return { count: to - from, at: (i) => origins.at(from + i) };
}

/** The origins of the rows `taken` lists, renumbered from 0. */
export function pickOrigins(origins: RecordOrigins, taken: readonly number[]): RecordOrigins {
  return { count: taken.length, at: (i) => origins.at(taken[i] as number) };
}
