/**
 * An event that changes nothing about its player (a treasure someone else won, a clue already
 * credited) leaves the player's row as it is: no new row version, so no new entry in the
 * primary key or the leaderboard index. Late in a game that is about a quarter of the players
 * a micro-batch touches (experiments §97). A new player is still registered by such an event.
 */
import { describe, expect, it } from 'vitest';
import { parseOccurredAt, type HuntEvent } from '../../src/events/schema';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { useTestDatabase } from '../helpers/database-fixture';
import { atSecond, clueFound, joined, treasureClaimed } from '../helpers/event-builders';

const db = useTestDatabase();

const accepted = (events: HuntEvent[]) => events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }));

async function apply(events: HuntEvent[]): Promise<void> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await applyEvents(client, accepted(events));
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

/** The row's physical version: a rewrite, even to the same values, gives it a new one. */
async function playerRow(playerId: string) {
  const { rows } = await db.pool.query(
    `SELECT ctid::text AS version, score::int, clues_found, treasures_claimed, display_name, active
       FROM player_scores WHERE hunt_id = 'h' AND player_id = $1`,
    [playerId],
  );
  return rows[0];
}

describe('store-and-score, an event that changes nothing about its player', () => {
  it('does not rewrite the player, and still scores the players it changes', async () => {
    await apply([
      joined({ eventId: 'j1', huntId: 'h', playerId: 'p1', displayName: 'Ann', occurredAt: atSecond(1) }),
      clueFound({ eventId: 'c1', huntId: 'h', playerId: 'p1', clueId: 'k1', points: 10, occurredAt: atSecond(2) }),
      treasureClaimed({ eventId: 't1', huntId: 'h', playerId: 'p2', treasureId: 'gold', points: 500, occurredAt: atSecond(3) }),
    ]);
    const before = await playerRow('p1');
    expect(before).toMatchObject({ score: 10, clues_found: 1, treasures_claimed: 0, display_name: 'Ann', active: true });

    // p1 claims a treasure p2 won and finds k1 again; p2 finds a new clue in the same batch.
    await apply([
      treasureClaimed({ eventId: 't2', huntId: 'h', playerId: 'p1', treasureId: 'gold', points: 500, occurredAt: atSecond(4) }),
      clueFound({ eventId: 'c2', huntId: 'h', playerId: 'p1', clueId: 'k1', points: 10, occurredAt: atSecond(5) }),
      clueFound({ eventId: 'c3', huntId: 'h', playerId: 'p2', clueId: 'k2', points: 20, occurredAt: atSecond(6) }),
    ]);
    expect(await playerRow('p1')).toEqual(before);
    expect(await playerRow('p2')).toMatchObject({ score: 520, clues_found: 1, treasures_claimed: 1 });
    const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM events`);
    expect(rows[0]!.n).toBe(6);
  });

  it('registers a new player whose only event changes nothing, with zero counts and active', async () => {
    // The file's database is shared by its tests: ids and the treasure of their own.
    await apply([treasureClaimed({ eventId: 't3', huntId: 'h', playerId: 'winner', treasureId: 'silver', points: 500, occurredAt: atSecond(7) })]);
    await apply([treasureClaimed({ eventId: 't4', huntId: 'h', playerId: 'late', treasureId: 'silver', points: 500, occurredAt: atSecond(8) })]);
    expect(await playerRow('late')).toMatchObject({ score: 0, clues_found: 0, treasures_claimed: 0, display_name: null, active: true });
  });
});
