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

  it("always takes the stand-in for a batch that could not be unpacked, whatever the batch's first stamp", () => {
    // The stand-in is stamped with the batch's first record; the rest of the batch may lie in the window.
    const standIn = { ...stamped('2026-11-30T23:59:59Z'), unreadable: { count: 150_000 } };
    expect(importsRecord(standIn, fromMs, toMs)).toBe(true);
  });
});
