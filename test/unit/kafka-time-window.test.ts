import { describe, expect, it } from 'vitest';
import { importsRecord } from '../../src/batch/backfill/kafka-source';

describe("a Kafka backfill's time window", () => {
  const [fromMs, toMs] = [Date.parse('2026-12-01T00:00:00Z'), Date.parse('2026-12-02T00:00:00Z')];
  const stamped = (iso: string) => ({ timestamp: String(Date.parse(iso)) });

  it('takes the records stamped in [from, to) and leaves the others out', () => {
    expect(importsRecord(stamped('2026-12-01T00:00:00Z'), fromMs, toMs)).toBe(true);
    expect(importsRecord(stamped('2026-11-30T23:59:59.999Z'), fromMs, toMs)).toBe(false);
    expect(importsRecord(stamped('2026-12-02T00:00:00Z'), fromMs, toMs)).toBe(false);
    expect(importsRecord(stamped('1970-01-01T00:00:00Z'), undefined, undefined)).toBe(true);
  });

  it('takes the stand-in for a batch that could not be unpacked when the batch began before to, even before from', () => {
    // The stand-in is stamped with the batch's first record; the rest of the batch may lie in the window.
    const standIn = (iso: string) => ({ ...stamped(iso), unreadable: { count: 150_000 } });
    expect(importsRecord(standIn('2026-11-30T23:59:59Z'), fromMs, toMs)).toBe(true);
    expect(importsRecord(standIn('2026-12-01T12:00:00Z'), fromMs, toMs)).toBe(true);
    // A batch begun at or after `to` is past the window: the range reads on to the log's end.
    expect(importsRecord(standIn('2026-12-02T00:00:00Z'), fromMs, toMs)).toBe(false);
  });
});
