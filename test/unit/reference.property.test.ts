/**
 * Properties of the reference fold over random event streams (test/helpers/arbitraries.ts).
 * The rules are defined in event time, so arrival order must not matter once duplicates are
 * gone; and a naive one-pass fold that trusts arrival order must agree on in-order streams.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { HuntEvent } from '../../src/events/schema';
import { compareEventTime } from '../../src/rules/order';
import {
  dedupeByEventId,
  foldEvents,
  normalizeFoldResult,
  type ClueCredit,
  type FoldResult,
  type HintPenalty,
  type PlayerStanding,
  type TreasureWinner,
} from '../../src/rules/reference';
import { eventStreamArb, redeliveredStreamArb, streamAndShuffleArb } from '../helpers/arbitraries';

const RUNS = { numRuns: 300 };

/** One pass in arrival order, first seen wins: what a hot path does. Right only for in-order streams. */
function foldInArrivalOrder(events: readonly HuntEvent[]): FoldResult {
  const seen = new Set<string>();
  const players = new Map<string, PlayerStanding>();
  const credits = new Map<string, ClueCredit>();
  const penalties = new Map<string, HintPenalty>();
  const winners = new Map<string, TreasureWinner>();
  for (const e of events) {
    if (seen.has(e.eventId)) continue;
    seen.add(e.eventId);
    const playerKey = `${e.huntId}/${e.playerId}`;
    let player = players.get(playerKey);
    if (!player) {
      player = { huntId: e.huntId, playerId: e.playerId, displayName: null, score: 0, cluesFound: 0, treasuresClaimed: 0, active: true };
      players.set(playerKey, player);
    }
    const { huntId, playerId, eventId } = e;
    switch (e.type) {
      case 'player.joined':
        player.active = true;
        if (e.payload.displayName !== undefined) player.displayName = e.payload.displayName;
        break;
      case 'player.left':
        player.active = false;
        break;
      case 'clue.found': {
        const key = `${playerKey}/${e.payload.clueId}`;
        if (credits.has(key)) break;
        credits.set(key, { huntId, playerId, clueId: e.payload.clueId, eventId, points: e.payload.points });
        player.score += e.payload.points;
        player.cluesFound += 1;
        break;
      }
      case 'hint.used': {
        const key = `${playerKey}/${e.payload.clueId}`;
        if (penalties.has(key)) break;
        penalties.set(key, { huntId, playerId, clueId: e.payload.clueId, eventId, penalty: e.payload.penalty });
        player.score -= e.payload.penalty;
        break;
      }
      case 'treasure.claimed': {
        const key = `${huntId}/${e.payload.treasureId}`;
        if (winners.has(key)) break;
        winners.set(key, { huntId, treasureId: e.payload.treasureId, playerId, eventId, points: e.payload.points });
        player.score += e.payload.points;
        player.treasuresClaimed += 1;
        break;
      }
    }
  }
  return normalizeFoldResult({
    players: [...players.values()],
    clueCredits: [...credits.values()],
    hintPenalties: [...penalties.values()],
    treasureWinners: [...winners.values()],
  });
}

describe('reference fold properties', () => {
  it('arrival order does not matter for a duplicate-free stream', () => {
    fc.assert(
      fc.property(streamAndShuffleArb({ maxLength: 50 }), ([stream, shuffled]) => {
        expect(foldEvents(shuffled)).toEqual(foldEvents(stream));
      }),
      RUNS,
    );
  });

  it('redeliveries after the first record change nothing', () => {
    // The oracle is the stream as generated before the redeliveries were added, not
    // dedupeByEventId: foldEvents dedupes with it, so comparing with it could never fail.
    for (const duplicates of ['exact', 'conflicting'] as const) {
      fc.assert(
        fc.property(redeliveredStreamArb({ duplicates }), ({ firsts, stream }) => {
          expect(dedupeByEventId(stream)).toEqual(firsts);
          expect(foldEvents(stream)).toEqual(foldEvents(firsts));
          expect(foldEvents(stream)).toEqual(foldEvents([...firsts].reverse()));
        }),
        RUNS,
      );
    }
  });

  it('on in-order streams, a one-pass arrival-order fold gives the same result', () => {
    fc.assert(
      fc.property(eventStreamArb({ order: 'event-time', duplicates: 'exact', maxLength: 50 }), (stream) => {
        expect(foldInArrivalOrder(stream)).toEqual(foldEvents(stream));
      }),
      RUNS,
    );
  });

  it('holds the counting invariants', () => {
    fc.assert(
      fc.property(eventStreamArb({ duplicates: 'conflicting' }), (stream) => {
        const events = dedupeByEventId(stream);
        const result = foldEvents(stream);
        const distinct = (values: string[]) => new Set(values).size;
        expect(result.players.map((p) => `${p.huntId}/${p.playerId}`)).toEqual(
          [...new Set(events.map((e) => `${e.huntId}/${e.playerId}`))].sort(),
        );
        for (const p of result.players) {
          const mine = <T extends { huntId: string; playerId: string }>(rows: T[]) =>
            rows.filter((r) => r.huntId === p.huntId && r.playerId === p.playerId);
          const own = mine(events);
          const credited = mine(result.clueCredits);
          const charged = mine(result.hintPenalties);
          const won = mine(result.treasureWinners);
          const total = (ns: number[]) => ns.reduce((a, b) => a + b, 0);
          expect(p.score).toBe(total(credited.map((c) => c.points)) - total(charged.map((h) => h.penalty)) + total(won.map((w) => w.points)));
          expect(p.cluesFound).toBe(distinct(own.flatMap((e) => (e.type === 'clue.found' ? [e.payload.clueId] : []))));
          expect(charged.length).toBe(distinct(own.flatMap((e) => (e.type === 'hint.used' ? [e.payload.clueId] : []))));
          expect(p.treasuresClaimed).toBe(won.length);
        }
        const claimed = events.flatMap((e) => (e.type === 'treasure.claimed' ? [`${e.huntId}/${e.payload.treasureId}`] : []));
        expect(result.treasureWinners.length).toBe(distinct(claimed));
      }),
      RUNS,
    );
  });

  it('every credit and every winner is the earliest of its kind', () => {
    fc.assert(
      fc.property(eventStreamArb({ duplicates: 'conflicting' }), (stream) => {
        const events = dedupeByEventId(stream);
        const result = foldEvents(stream);
        const byId = new Map(events.map((e) => [e.eventId, e]));
        for (const credit of result.clueCredits) {
          const chosen = byId.get(credit.eventId) as HuntEvent;
          const rivals = events.filter(
            (e) => e.type === 'clue.found' && e.huntId === credit.huntId && e.playerId === credit.playerId && e.payload.clueId === credit.clueId,
          );
          for (const rival of rivals) expect(compareEventTime(chosen, rival)).toBeLessThanOrEqual(0);
        }
        for (const winner of result.treasureWinners) {
          const chosen = byId.get(winner.eventId) as HuntEvent;
          const rivals = events.filter(
            (e) => e.type === 'treasure.claimed' && e.huntId === winner.huntId && e.payload.treasureId === winner.treasureId,
          );
          for (const rival of rivals) expect(compareEventTime(chosen, rival)).toBeLessThanOrEqual(0);
        }
      }),
      RUNS,
    );
  });
});
