/**
 * A player's rank (GET /hunts/{huntId}/players/{playerId}) against the contract's leaderboard
 * order in TypeScript (compareLeaderboard), on a real Postgres: the rank counts the players
 * ahead in two parts (a higher score; the same score and a smaller playerId), and must give
 * the position the order gives, ties included, and the rank the leaderboard page shows.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareLeaderboard } from '../../src/rules/order';
import { leaderboardPage, playerEntry } from '../../src/store/read/leaderboard';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();

// Few scores and look-alike ids, so ties and byte order (upper case before lower) decide often.
const playerArb = fc.record({
  playerId: fc.constantFrom('a', 'b', 'A', 'B', 'a1', 'a-', 'a_', 'a.', 'Z', 'z', '0', '9a', 'aa', 'ab', 'B0'),
  score: fc.integer({ min: -2, max: 2 }),
});

describe('a player’s rank', () => {
  it('is its position in the leaderboard order, ties broken by playerId in byte order, as the page shows it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(playerArb, { minLength: 1, maxLength: 15, selector: (p) => p.playerId }), async (players) => {
        await db.pool.query('TRUNCATE hunts, player_scores');
        await db.pool.query(`INSERT INTO hunts (hunt_id, as_of) VALUES ('h1', now()), ('h2', now())`);
        // Another hunt's players never count: the same ids, all ahead.
        await db.pool.query(
          `INSERT INTO player_scores (hunt_id, player_id, score)
           SELECT h, p, s FROM unnest($1::text[], $2::bigint[]) AS x(p, s), unnest(ARRAY['h1', 'h2']) AS h`,
          [players.map((p) => p.playerId), players.map((p) => p.score)],
        );
        await db.pool.query(`UPDATE player_scores SET score = score + 100 WHERE hunt_id = 'h2'`);

        const expected = [...players].sort(compareLeaderboard);
        const page = await leaderboardPage(db.pool, 'h1', 1000);
        for (const [i, player] of expected.entries()) {
          const entry = await playerEntry(db.pool, 'h1', player.playerId);
          expect(entry).toMatchObject({ rank: i + 1, playerId: player.playerId, score: player.score });
          expect(page?.entries[i]).toMatchObject({ rank: i + 1, playerId: player.playerId });
        }
      }),
      { numRuns: 60 },
    );
  });
});
