import { describe, expect, it } from 'vitest';
import { addBatch, type ReplayTotals } from '../../src/correctness/dlq-replay-job';

describe('dlqReplay totals', () => {
  it('add a batch into a new object, moving the cursor and merging reasons', () => {
    const before: ReplayTotals = { lastId: 10, examined: 5, replayed: 3, duplicates: 1, stillInvalid: { invalid_json: 1 } };
    const snapshot = structuredClone(before);
    const after = addBatch(before, { lastId: 20, examined: 4, replayed: 1, duplicates: 1, stillInvalid: { invalid_json: 1, too_large: 1 } });
    expect(after).toEqual({ lastId: 20, examined: 9, replayed: 4, duplicates: 2, stillInvalid: { invalid_json: 2, too_large: 1 } });
    // The totals a heartbeat may still hold are left as they were.
    expect(before).toEqual(snapshot);
  });
});
