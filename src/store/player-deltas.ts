/**
 * Pure part of applying a batch: turns the events really inserted, and the credits and wins
 * that took, into one aggregated delta per player (pre-aggregated so the upsert touches each
 * player row once per batch).
 */
import { compareByteOrder, compareInstants } from '../events/validate';
import type { AcceptedEvent, Credit, Win } from './apply-events';

interface Stamp {
  occurredAt: string;
  eventId: string;
  instant: AcceptedEvent['instant'];
}

export interface PlayerDelta {
  huntId: string;
  playerId: string;
  score: number;
  cluesFound: number;
  treasuresClaimed: number;
  /** The batch's latest player.joined that carries a display name. */
  displayName?: Stamp & { value: string };
  /** The batch's latest player.joined / player.left. */
  activity?: Stamp & { active: boolean };
}

/** Event-time order of the contract: occurredAt instant, then eventId in byte order. */
export function isLater(a: Stamp, b: Stamp | undefined): boolean {
  if (!b) return true;
  return (compareInstants(a.instant, b.instant) || compareByteOrder(a.eventId, b.eventId)) > 0;
}

export function deltasOf(events: readonly AcceptedEvent[], credits: readonly Credit[], wins: readonly Win[]): PlayerDelta[] {
  const players = new Map<string, PlayerDelta>();
  const deltaFor = (huntId: string, playerId: string): PlayerDelta => {
    // A tab cannot occur in ids, so it separates the two parts of the key unambiguously.
    const key = `${huntId}\t${playerId}`;
    let delta = players.get(key);
    if (!delta) {
      delta = { huntId, playerId, score: 0, cluesFound: 0, treasuresClaimed: 0 };
      players.set(key, delta);
    }
    return delta;
  };

  // Every event registers its player, even one that scores nothing.
  for (const { event, instant } of events) {
    const delta = deltaFor(event.huntId, event.playerId);
    const stamp = { occurredAt: event.occurredAt, eventId: event.eventId, instant };
    if (event.type === 'player.joined') {
      if (isLater(stamp, delta.activity)) delta.activity = { ...stamp, active: true };
      const name = event.payload.displayName;
      if (name !== undefined && isLater(stamp, delta.displayName)) delta.displayName = { ...stamp, value: name };
    } else if (event.type === 'player.left') {
      if (isLater(stamp, delta.activity)) delta.activity = { ...stamp, active: false };
    }
  }
  for (const credit of credits) {
    const delta = deltaFor(credit.huntId, credit.playerId);
    if (credit.kind === 'found') {
      delta.score += credit.points;
      delta.cluesFound += 1;
    } else {
      delta.score -= credit.points;
    }
  }
  for (const win of wins) {
    const delta = deltaFor(win.huntId, win.playerId);
    delta.score += win.points;
    delta.treasuresClaimed += 1;
  }
  return [...players.values()];
}
