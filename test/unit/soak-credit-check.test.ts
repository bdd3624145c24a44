import { describe, expect, it } from 'vitest';
import { creditConsistency } from '../../bench/soak/verify';
import type { HuntEvent } from '../../src/events/schema';
import { foldEvents, type FoldResult } from '../../src/rules/reference';

const event = (eventId: string, playerId: string, at: string, type: HuntEvent['type'], payload: object) =>
  ({ eventId, type, schemaVersion: 1, huntId: 'h1', playerId, occurredAt: `2026-12-02T10:00:0${at}Z`, payload }) as HuntEvent;

const foundLate = event('e1', 'p1', '2', 'clue.found', { clueId: 'c1', points: 10 });
// Happened first, arrived second: the fold credits it, the stream credited e1.
const foundEarly = event('e2', 'p1', '1', 'clue.found', { clueId: 'c1', points: 20 });
const hint = event('e3', 'p1', '3', 'hint.used', { clueId: 'c2', penalty: 5 });
const claim = event('e4', 'p2', '4', 'treasure.claimed', { treasureId: 't1', points: 500 });
const events = [foundLate, foundEarly, hint, claim];

/** What the hot path holds: e2 arrived after e1 had taken the credit, so it scored nothing. */
function streamed(): FoldResult {
  return foldEvents([foundLate, hint, claim]);
}

describe("the soak's credit check before the final reconcile", () => {
  it('accepts the provisional result of an earlier event arriving later, and counts it', () => {
    expect(creditConsistency(streamed(), events)).toEqual({ problems: [], provisional: 1 });
    expect(creditConsistency(foldEvents(events), events)).toEqual({ problems: [], provisional: 0 });
  });

  it('finds a score counted twice', () => {
    const live = streamed();
    (live.players.find((p) => p.playerId === 'p1') as { score: number }).score += 10;
    expect(creditConsistency(live, events).problems).toEqual(['h1/p1: score 15, clues 1, wins 0; its credits add up to 5, 1, 0']);
  });

  it('finds a credit lost, even when the totals were kept consistent with it', () => {
    const live = streamed();
    live.hintPenalties = [];
    (live.players.find((p) => p.playerId === 'p1') as { score: number }).score += 5;
    expect(creditConsistency(live, events).problems).toEqual(['hint h1/p1/c2: credited by the fold, not live']);
  });

  it('finds a credit held by an event of another key, or with other points', () => {
    const wrongEvent = streamed();
    (wrongEvent.clueCredits[0] as { eventId: string }).eventId = 'e3';
    expect(creditConsistency(wrongEvent, events).problems).toEqual(['found h1/p1/c1: held by e3, which is not an event of this key with 10 points']);

    const wrongPoints = streamed();
    (wrongPoints.clueCredits[0] as { points: number }).points = 20;
    (wrongPoints.players.find((p) => p.playerId === 'p1') as { score: number }).score += 10;
    expect(creditConsistency(wrongPoints, events).problems).toEqual(['found h1/p1/c1: held by e1, which is not an event of this key with 20 points']);
  });
});
