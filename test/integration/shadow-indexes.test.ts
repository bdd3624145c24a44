/**
 * A shadow made without its indexes (reprocess fills it bare, then builds them) gets every
 * index of its live table from buildShadowIndexes, constraints as constraints, so the swap's
 * shape check finds nothing missing and the swapped-in table carries the live names. On the
 * real Postgres: the definitions are Postgres's own.
 */
import { describe, expect, it } from 'vitest';
import { shapeChanges } from '../../src/store/batch/live-table-shape';
import { buildShadowIndexes, recreateShadow, swapInShadow } from '../../src/store/batch/shadow-tables';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();

const indexesOf = async (table: string) =>
  (
    await db.pool.query<{ name: string; constraint: string | null }>(
      `SELECT c.relname AS name, k.contype::text AS constraint
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid
        WHERE i.indrelid = $1::regclass ORDER BY c.relname`,
      [table],
    )
  ).rows;

describe('buildShadowIndexes', () => {
  it('gives a bare shadow every index of the live table, constraints as constraints, once, and the swap keeps the live names', async () => {
    await db.pool.query(`
      CREATE TABLE scores (
        hunt_id text COLLATE "C" NOT NULL, player_id text COLLATE "C" NOT NULL, score bigint NOT NULL CHECK (score > -1000000),
        nick text, PRIMARY KEY (hunt_id, player_id), CONSTRAINT scores_nick_key UNIQUE (hunt_id, nick));
      CREATE INDEX scores_board ON scores (hunt_id, score DESC, player_id) INCLUDE (nick) WHERE score > 0;
      CREATE UNIQUE INDEX scores_lower_nick ON scores (lower(nick));
      -- Two of one definition (an operator's slip): two on the shadow too, each swapped to its own name.
      CREATE INDEX scores_by_hunt ON scores (hunt_id);
      CREATE INDEX scores_by_hunt_again ON scores (hunt_id);
      INSERT INTO scores VALUES ('h1', 'p1', 10, 'Ann'), ('h1', 'p2', 0, 'Bob'), ('h2', 'p1', 5, NULL);`);
    const live = await indexesOf('scores');

    await withTransaction(db.pool, (client) => recreateShadow(client, 'scores', 'scores_shadow', 'later'));
    expect(await indexesOf('scores_shadow')).toEqual([]);
    // The CHECK and NOT NULL come with the columns; only indexes are missing.
    expect((await shapeChanges(db.pool, 'scores', 'scores_shadow')).every((line) => line.startsWith('unique index') || line.startsWith('index'))).toBe(true);
    await db.pool.query('INSERT INTO scores_shadow SELECT * FROM scores');

    await withTransaction(db.pool, (client) => buildShadowIndexes(client, 'scores', 'scores_shadow'));
    expect(await shapeChanges(db.pool, 'scores', 'scores_shadow')).toEqual([]);
    const built = await indexesOf('scores_shadow');
    expect(built).toHaveLength(live.length);
    expect(built.map((index) => index.constraint).sort()).toEqual(live.map((index) => index.constraint).sort());
    // A retry after the builds committed builds nothing twice.
    await withTransaction(db.pool, (client) => buildShadowIndexes(client, 'scores', 'scores_shadow'));
    expect(await indexesOf('scores_shadow')).toEqual(built);

    await withTransaction(db.pool, (client) => swapInShadow(client, 'scores', 'scores_shadow'));
    expect(await indexesOf('scores')).toEqual(live);
  });

  it('fails with the unique violation when the bare shadow holds a key twice', async () => {
    await db.pool.query('CREATE TABLE pairs (a text PRIMARY KEY, b int)');
    await withTransaction(db.pool, (client) => recreateShadow(client, 'pairs', 'pairs_shadow', 'later'));
    await db.pool.query(`INSERT INTO pairs_shadow VALUES ('x', 1), ('x', 2)`);
    await expect(withTransaction(db.pool, (client) => buildShadowIndexes(client, 'pairs', 'pairs_shadow'))).rejects.toMatchObject({ code: '23505' });
  });
});
