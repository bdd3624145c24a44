/**
 * Terse builders for hand-written test events. Defaults: hunt `h1`, player `p1`, clue `c1`,
 * treasure `t1`, occurredAt T0 (2026-11-22T10:00:00.000Z); tests override what they are about.
 */
import type {
  ClueFoundEvent,
  HintUsedEvent,
  PlayerJoinedEvent,
  PlayerLeftEvent,
  TreasureClaimedEvent,
} from '../../src/events/schema';

export const T0_MS = Date.UTC(2026, 10, 22, 10, 0, 0);

/** T0 plus the given seconds, as an ISO string in UTC. */
export function atSecond(seconds: number): string {
  return new Date(T0_MS + seconds * 1000).toISOString();
}

interface Envelope {
  eventId: string;
  huntId?: string;
  playerId?: string;
  occurredAt?: string;
}

function envelope({ eventId, huntId = 'h1', playerId = 'p1', occurredAt = atSecond(0) }: Envelope) {
  return { eventId, schemaVersion: 1 as const, huntId, playerId, occurredAt };
}

export function joined(fields: Envelope & { displayName?: string; teamId?: string }): PlayerJoinedEvent {
  const payload: PlayerJoinedEvent['payload'] = {};
  if (fields.displayName !== undefined) payload.displayName = fields.displayName;
  if (fields.teamId !== undefined) payload.teamId = fields.teamId;
  return { ...envelope(fields), type: 'player.joined', payload };
}

export function left(fields: Envelope): PlayerLeftEvent {
  return { ...envelope(fields), type: 'player.left', payload: {} };
}

export function clueFound(fields: Envelope & { clueId?: string; points?: number }): ClueFoundEvent {
  return { ...envelope(fields), type: 'clue.found', payload: { clueId: fields.clueId ?? 'c1', points: fields.points ?? 10 } };
}

export function hintUsed(fields: Envelope & { clueId?: string; penalty?: number }): HintUsedEvent {
  return { ...envelope(fields), type: 'hint.used', payload: { clueId: fields.clueId ?? 'c1', penalty: fields.penalty ?? 5 } };
}

export function treasureClaimed(fields: Envelope & { treasureId?: string; points?: number }): TreasureClaimedEvent {
  return {
    ...envelope(fields),
    type: 'treasure.claimed',
    payload: { treasureId: fields.treasureId ?? 't1', points: fields.points ?? 100 },
  };
}

/** The bytes of a Kafka record value holding `value` as JSON. */
export function recordOf(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}
