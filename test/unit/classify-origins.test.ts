/**
 * What an accepted record keeps until its micro-batch commits: its origin (offset, key and
 * value), read only if the database refuses the row, and then kept as a reject is. A key is
 * never validated, and one of tens of MiB can come compressed with a valid event.
 */
import { describe, expect, it } from 'vitest';
import { classifySlice, MAX_KEPT_BYTES } from '../../src/pipeline/classify';
import { rowCount } from '../../src/store/hot-path/event-rows';
import { clueFound, recordOf } from '../helpers/event-builders';

describe("an accepted record's origin", () => {
  it('keeps at most MAX_KEPT_BYTES of its key, and the value whole', () => {
    const value = recordOf(clueFound({ eventId: 'e1', huntId: 'h', playerId: 'p', occurredAt: new Date(Date.now() - 60_000).toISOString() }));
    const key = Buffer.alloc(3 * MAX_KEPT_BYTES, 0x6b);
    const { rows, origins, rejected } = classifySlice('hunt.events', 0, [{ offset: '7', key, value, timestamp: String(Date.now()) }], new Date());
    expect(rejected).toEqual([]);
    expect(rowCount(rows)).toBe(1);
    const origin = origins.at(0);
    expect(origin.key?.length).toBe(MAX_KEPT_BYTES);
    expect(origin.key?.equals(key.subarray(0, MAX_KEPT_BYTES))).toBe(true);
    expect(origin.value?.equals(value)).toBe(true);
  });

  it('keeps a small key as it came, and a null key as null', () => {
    const at = new Date(Date.now() - 60_000).toISOString();
    const records = [
      { offset: '1', key: Buffer.from('h'), value: recordOf(clueFound({ eventId: 'e1', huntId: 'h', playerId: 'p', occurredAt: at })), timestamp: '0' },
      { offset: '2', key: null, value: recordOf(clueFound({ eventId: 'e2', huntId: 'h', playerId: 'p', occurredAt: at })), timestamp: '0' },
    ];
    const { origins } = classifySlice('hunt.events', 0, records, new Date());
    expect(origins.at(0).key?.toString()).toBe('h');
    expect(origins.at(1).key).toBeNull();
  });
});
