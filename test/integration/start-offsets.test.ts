/**
 * A partition's start position (storeStartOffset) on the real Postgres: of two members of a
 * new group storing starts at once, the first start stays, known to a later join as a start
 * (no record before it to check, no false log reset); a start never moves a position, read
 * to or not, so no record its owner has not applied is passed over.
 */
import { describe, expect, it } from 'vitest';
import { loadJoinPositions, storeOffsets, storeStartOffset } from '../../src/store/hot-path/offsets';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();
const at = (partition: number, nextOffset: bigint) => ({ topic: 'starts', partition, nextOffset });
const store = (group: string, partition: number, offset: bigint) => withTransaction(db.pool, (c) => storeStartOffset(c, group, at(partition, offset)));

describe('storeStartOffset', () => {
  it('keeps the first start stored, as a start, when another member stores one at once (INGEST_START_FROM=latest, two members)', async () => {
    await store('two-starts', 0, 100n);
    await store('two-starts', 0, 105n);
    await store('two-starts', 1, 105n);
    await store('two-starts', 1, 100n);
    const { stored, unreadStarts } = await loadJoinPositions(db.pool, 'two-starts', 'starts');
    expect(stored).toEqual(new Map([[0, 100n], [1, 105n]]));
    expect(unreadStarts).toEqual(new Set([0, 1]));
  });

  it('does not pass over records its owner applied from the first start while the later start was stored', async () => {
    await store('owner-reading', 0, 100n);
    await store('owner-reading', 0, 150n); // a second member, which found the log's end later
    await withTransaction(db.pool, (c) => storeOffsets(c, 'owner-reading', [at(0, 120n)])); // the owner applied 100..119
    const { stored, unreadStarts } = await loadJoinPositions(db.pool, 'owner-reading', 'starts');
    // A new owner goes on from 120, checking the record before it, rather than from 150 unchecked.
    expect(stored).toEqual(new Map([[0, 120n]]));
    expect(unreadStarts).toEqual(new Set());
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
