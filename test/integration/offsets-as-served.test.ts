/** loadOffsetsAsServed on the real Postgres: the stored positions, and that a primary served them. */
import { describe, expect, it } from 'vitest';
import { loadOffsetsAsServed } from '../../src/store/hot-path/offsets';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();

describe('loadOffsetsAsServed', () => {
  it("reads a group's positions for a topic, and says the server is no standby, with positions stored or none", async () => {
    expect(await loadOffsetsAsServed(db.pool, 'g', 't')).toEqual({ offsets: new Map(), fromStandby: false });
    await db.pool.query(
      `INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ('g', 't', 0, 980), ('g', 't', 3, 12), ('g', 'other', 0, 5), ('h', 't', 0, 7)`,
    );
    expect(await loadOffsetsAsServed(db.pool, 'g', 't')).toEqual({ offsets: new Map([[0, 980n], [3, 12n]]), fromStandby: false });
  });
});
