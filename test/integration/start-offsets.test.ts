/**
 * A partition's start position (storeStartOffset) on the real Postgres: two members of a new
 * group storing starts at once leave a position a later join knows as a start, with nothing
 * read before it (no record to check, no false log reset); a start never moves a position
 * records were read to.
 */
import { describe, expect, it } from 'vitest';
import { loadJoinPositions, storeOffsets, storeStartOffset } from '../../src/store/hot-path/offsets';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();
const at = (partition: number, nextOffset: bigint) => ({ topic: 'starts', partition, nextOffset });
const store = (group: string, partition: number, offset: bigint) => withTransaction(db.pool, (c) => storeStartOffset(c, group, at(partition, offset)));

describe('storeStartOffset', () => {
  it('keeps a position a start when another member stored a later start first (INGEST_START_FROM=latest, two members at once)', async () => {
    await store('two-starts', 0, 100n);
    await store('two-starts', 0, 105n);
    await store('two-starts', 1, 105n);
    await store('two-starts', 1, 100n);
    const { stored, unreadStarts } = await loadJoinPositions(db.pool, 'two-starts', 'starts');
    expect(stored).toEqual(new Map([[0, 105n], [1, 105n]]));
    expect(unreadStarts).toEqual(new Set([0, 1]));
  });

  it('leaves a position records were read to as it is: a later start skips none of the records after it', async () => {
    await store('read-since', 0, 100n);
    await withTransaction(db.pool, (c) => storeOffsets(c, 'read-since', [at(0, 120n)]));
    await store('read-since', 0, 110n);
    await store('read-since', 0, 130n);
    const { stored, unreadStarts } = await loadJoinPositions(db.pool, 'read-since', 'starts');
    expect(stored).toEqual(new Map([[0, 120n]]));
    expect(unreadStarts).toEqual(new Set());
  });
});
