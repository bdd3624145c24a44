import { describe, expect, it } from 'vitest';
import {
  dedupeByEventId,
  foldEvents,
  leaderboardOf,
  normalizeFoldResult,
  rankStandings,
  type PlayerStanding,
} from '../../src/rules/reference';
import { atSecond, clueFound, hintUsed, joined, left, treasureClaimed } from '../helpers/event-builders';

const standing = (overrides: Partial<PlayerStanding>): PlayerStanding => ({
  huntId: 'h1',
  playerId: 'p1',
  displayName: null,
  score: 0,
  cluesFound: 0,
  treasuresClaimed: 0,
  active: true,
  ...overrides,
});

const playerOf = (events: Parameters<typeof foldEvents>[0], playerId = 'p1', huntId = 'h1') =>
  foldEvents(events).players.find((p) => p.playerId === playerId && p.huntId === huntId);

describe('registration', () => {
  it('gives nothing for no events', () => {
    expect(foldEvents([])).toEqual({ players: [], clueCredits: [], hintPenalties: [], treasureWinners: [] });
  });

  it('a join registers an active player with score 0', () => {
    expect(foldEvents([joined({ eventId: 'j', displayName: 'Ada' })]).players).toEqual([standing({ displayName: 'Ada' })]);
  });

  it('any event registers its player implicitly: active, no display name', () => {
    expect(foldEvents([hintUsed({ eventId: 'h', penalty: 0 })]).players).toEqual([standing({})]);
  });

  it('keeps players of different hunts apart', () => {
    const result = foldEvents([clueFound({ eventId: 'a', huntId: 'h1' }), clueFound({ eventId: 'b', huntId: 'h2' })]);
    expect(result.players.map((p) => [p.huntId, p.playerId, p.score])).toEqual([
      ['h1', 'p1', 10],
      ['h2', 'p1', 10],
    ]);
  });
});

describe('clue.found', () => {
  it('only the earliest find of a clue scores, even when it arrives later', () => {
    const result = foldEvents([
      clueFound({ eventId: 'late', occurredAt: atSecond(10), points: 10 }),
      clueFound({ eventId: 'early', occurredAt: atSecond(5), points: 30 }),
    ]);
    expect(result.clueCredits).toEqual([{ huntId: 'h1', playerId: 'p1', clueId: 'c1', eventId: 'early', points: 30 }]);
    expect(result.players).toEqual([standing({ score: 30, cluesFound: 1 })]);
  });

  it('compares occurredAt as instants across offsets, ties by smaller eventId', () => {
    const result = foldEvents([
      clueFound({ eventId: 'b', occurredAt: '2026-11-22T10:00:00Z', points: 1 }),
      clueFound({ eventId: 'a', occurredAt: '2026-11-22T12:00:00.000+02:00', points: 2 }),
      clueFound({ eventId: '0', occurredAt: '2026-11-22T11:00:00.000001+01:00', points: 3 }),
    ]);
    expect(result.clueCredits.map((c) => c.eventId)).toEqual(['a']);
  });

  it('counts distinct clues, including ones worth 0 points', () => {
    const player = playerOf([
      clueFound({ eventId: '1', clueId: 'c1', points: 10 }),
      clueFound({ eventId: '2', clueId: 'c2', points: 0 }),
      clueFound({ eventId: '3', clueId: 'c1', points: 99, occurredAt: atSecond(1) }),
    ]);
    expect(player).toEqual(standing({ score: 10, cluesFound: 2 }));
  });

  it('credits each player separately for the same clue', () => {
    const result = foldEvents([clueFound({ eventId: '1', playerId: 'p1' }), clueFound({ eventId: '2', playerId: 'p2' })]);
    expect(result.players.map((p) => [p.playerId, p.score, p.cluesFound])).toEqual([
      ['p1', 10, 1],
      ['p2', 10, 1],
    ]);
  });
});

describe('hint.used', () => {
  it('charges the penalty of the earliest hint per clue, once', () => {
    const result = foldEvents([
      hintUsed({ eventId: 'x', occurredAt: atSecond(9), penalty: 100 }),
      hintUsed({ eventId: 'y', occurredAt: atSecond(3), penalty: 7 }),
      hintUsed({ eventId: 'z', clueId: 'c2', penalty: 1 }),
    ]);
    expect(result.hintPenalties.map((h) => [h.clueId, h.eventId, h.penalty])).toEqual([
      ['c1', 'y', 7],
      ['c2', 'z', 1],
    ]);
    expect(result.players).toEqual([standing({ score: -8 })]);
  });

  it('lets a score go negative and does not count as a clue found', () => {
    const player = playerOf([clueFound({ eventId: 'c', points: 5 }), hintUsed({ eventId: 'h', penalty: 50 })]);
    expect(player).toEqual(standing({ score: -45, cluesFound: 1 }));
  });
});

describe('treasure.claimed', () => {
  it('the earliest claim wins the points; other claims score nothing', () => {
    const result = foldEvents([
      treasureClaimed({ eventId: 'c2', playerId: 'p2', occurredAt: atSecond(2), points: 500 }),
      treasureClaimed({ eventId: 'c1', playerId: 'p1', occurredAt: atSecond(4), points: 500 }),
      treasureClaimed({ eventId: 'c3', playerId: 'p3', occurredAt: atSecond(1), points: 500 }),
    ]);
    expect(result.treasureWinners).toEqual([{ huntId: 'h1', treasureId: 't1', playerId: 'p3', eventId: 'c3', points: 500 }]);
    expect(result.players.map((p) => [p.playerId, p.score, p.treasuresClaimed])).toEqual([
      ['p1', 0, 0],
      ['p2', 0, 0],
      ['p3', 500, 1],
    ]);
  });

  it('a tie in occurredAt goes to the smaller eventId by byte order, not JS string order', () => {
    // '\uFFFD' (EF BF BD) < '😀' (F0 9F 98 80) in UTF-8, though '😀' < '\uFFFD' in UTF-16.
    const result = foldEvents([
      treasureClaimed({ eventId: '😀', playerId: 'p1' }),
      treasureClaimed({ eventId: '\uFFFD', playerId: 'p2', occurredAt: '2026-11-22T11:00:00+01:00' }),
    ]);
    expect(result.treasureWinners.map((w) => [w.eventId, w.playerId])).toEqual([['\uFFFD', 'p2']]);
  });

  it('each treasure of each hunt has its own winner; a player may win several', () => {
    const result = foldEvents([
      treasureClaimed({ eventId: '1', treasureId: 't1', points: 100 }),
      treasureClaimed({ eventId: '2', treasureId: 't2', points: 0 }),
      treasureClaimed({ eventId: '3', treasureId: 't1', huntId: 'h2', playerId: 'p2', points: 7 }),
    ]);
    expect(result.treasureWinners.map((w) => [w.huntId, w.treasureId, w.playerId])).toEqual([
      ['h1', 't1', 'p1'],
      ['h1', 't2', 'p1'],
      ['h2', 't1', 'p2'],
    ]);
    expect(result.players[0]).toEqual(standing({ score: 100, treasuresClaimed: 2 }));
  });
});

describe('player.joined / player.left', () => {
  it('the display name is that of the latest join that has one', () => {
    const player = playerOf([
      joined({ eventId: '1', occurredAt: atSecond(0), displayName: 'Ada' }),
      joined({ eventId: '2', occurredAt: atSecond(10) }), // no name: keeps the previous one
      joined({ eventId: '3', occurredAt: atSecond(5), displayName: 'Bo' }),
    ]);
    expect(player?.displayName).toBe('Bo');
  });

  it('a join without a name leaves the display name null', () => {
    expect(playerOf([joined({ eventId: '1', teamId: 'red' })])?.displayName).toBeNull();
  });

  it('left makes the player inactive; the score stays and later events still count', () => {
    const player = playerOf([
      joined({ eventId: '1', occurredAt: atSecond(0) }),
      clueFound({ eventId: '2', occurredAt: atSecond(5), points: 10 }),
      left({ eventId: '3', occurredAt: atSecond(10) }),
      clueFound({ eventId: '4', occurredAt: atSecond(20), clueId: 'c2', points: 5 }),
    ]);
    expect(player).toEqual(standing({ score: 15, cluesFound: 2, active: false }));
  });

  it('activity follows the latest join/left by event time, not by arrival', () => {
    const leftLate = left({ eventId: 'l', occurredAt: atSecond(10) });
    const joinEarly = joined({ eventId: 'j', occurredAt: atSecond(5) });
    expect(playerOf([leftLate, joinEarly])?.active).toBe(false);
    expect(playerOf([leftLate, joinEarly, joined({ eventId: 'k', occurredAt: atSecond(11) })])?.active).toBe(true);
    // Same instant: the larger eventId is the later one.
    const tie = [left({ eventId: 'b', occurredAt: atSecond(1) }), joined({ eventId: 'a', occurredAt: atSecond(1) })];
    expect(playerOf(tie)?.active).toBe(false);
  });

  it('a player who only left is registered and inactive', () => {
    expect(playerOf([left({ eventId: 'l' })])).toEqual(standing({ active: false }));
  });
});

describe('deduplication by eventId', () => {
  it('ignores later records with an eventId already seen, whatever their content', () => {
    const original = clueFound({ eventId: 'e', occurredAt: atSecond(5), points: 10 });
    const conflicting = clueFound({ eventId: 'e', occurredAt: atSecond(1), points: 999, clueId: 'c2' });
    expect(dedupeByEventId([original, conflicting, original])).toEqual([original]);
    expect(playerOf([original, conflicting])).toEqual(standing({ score: 10, cluesFound: 1 }));
    expect(playerOf([conflicting, original])).toEqual(standing({ score: 999, cluesFound: 1 }));
  });

  it('a duplicate claim cannot steal a treasure', () => {
    const result = foldEvents([
      treasureClaimed({ eventId: 'a', playerId: 'p1', occurredAt: atSecond(3) }),
      treasureClaimed({ eventId: 'b', playerId: 'p2', occurredAt: atSecond(2) }),
      treasureClaimed({ eventId: 'a', playerId: 'p3', occurredAt: atSecond(1) }),
    ]);
    expect(result.treasureWinners.map((w) => w.playerId)).toEqual(['p2']);
    expect(result.players.map((p) => p.playerId)).toEqual(['p1', 'p2']);
  });
});

describe('leaderboard', () => {
  it('orders by score descending, then playerId in byte order, ranks are positions', () => {
    const result = foldEvents([
      clueFound({ eventId: '1', playerId: 'p1', points: 10 }),
      clueFound({ eventId: '2', playerId: 'P4', points: 10 }),
      clueFound({ eventId: '3', playerId: 'p2', points: 30 }),
      hintUsed({ eventId: '4', playerId: 'p3', penalty: 1 }),
      joined({ eventId: '5', playerId: 'a', displayName: 'Ann' }),
      clueFound({ eventId: '6', huntId: 'h2', playerId: 'zz', points: 1000 }),
    ]);
    expect(leaderboardOf(result, 'h1')).toEqual([
      { rank: 1, playerId: 'p2', displayName: null, score: 30, cluesFound: 1, treasuresClaimed: 0, active: true },
      { rank: 2, playerId: 'P4', displayName: null, score: 10, cluesFound: 1, treasuresClaimed: 0, active: true },
      { rank: 3, playerId: 'p1', displayName: null, score: 10, cluesFound: 1, treasuresClaimed: 0, active: true },
      { rank: 4, playerId: 'a', displayName: 'Ann', score: 0, cluesFound: 0, treasuresClaimed: 0, active: true },
      { rank: 5, playerId: 'p3', displayName: null, score: -1, cluesFound: 0, treasuresClaimed: 0, active: true },
    ]);
    expect(leaderboardOf(result, 'nope')).toEqual([]);
  });

  it('rankStandings does not mutate its input', () => {
    const standings = [standing({ playerId: 'b' }), standing({ playerId: 'a' })];
    rankStandings(standings);
    expect(standings.map((s) => s.playerId)).toEqual(['b', 'a']);
  });
});

describe('normalizeFoldResult', () => {
  it('sorts rows built in any order into the fold order', () => {
    const result = foldEvents([
      clueFound({ eventId: '1', huntId: 'h2', playerId: 'p2' }),
      clueFound({ eventId: '2', huntId: 'h1', playerId: 'p9', clueId: 'c2' }),
      clueFound({ eventId: '3', huntId: 'h1', playerId: 'p9', clueId: 'c1' }),
    ]);
    const shuffled = {
      players: [...result.players].reverse(),
      clueCredits: [...result.clueCredits].reverse(),
      hintPenalties: [],
      treasureWinners: [],
    };
    expect(normalizeFoldResult(shuffled)).toEqual(result);
    expect(result.clueCredits.map((c) => [c.huntId, c.clueId])).toEqual([
      ['h1', 'c1'],
      ['h1', 'c2'],
      ['h2', 'c1'],
    ]);
  });
});
