/**
 * Realistic game traffic for demos, load tests and benchmarks: players join, find clues
 * (sometimes twice), use hints, claim treasures (sometimes several players the same one),
 * leave. Optional fractions of duplicates (same eventId resent, sometimes with another
 * payload), invalid records (one of each reject reason) and late treasure claims (the
 * claim happened earlier than it is sent).
 */
import { randomUUID } from 'node:crypto';
import type { HuntEvent } from '../events/schema';
import { MAX_EVENT_BYTES } from '../events/validate';

export interface TrafficOptions {
  hunts: number;
  playersPerHunt: number;
  cluesPerHunt?: number;
  treasuresPerHunt?: number;
  duplicateFraction?: number;
  invalidFraction?: number;
  lateClaimFraction?: number;
  /** How far in the past a late claim happened. */
  lateByMs?: number;
  /** Source of randomness in [0, 1); seedable for reproducible runs. */
  random?: () => number;
  /** Clock for occurredAt. */
  now?: () => number;
}

/** One Kafka record to send: the key and the raw value bytes (possibly invalid on purpose). */
export interface TrafficRecord {
  key: string;
  value: Buffer;
  /** The event when the record is valid, for tests that fold what was sent. */
  event?: HuntEvent;
  kind: 'event' | 'duplicate' | 'invalid';
}

/** A small, fast, seedable PRNG (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class TrafficGenerator {
  private readonly joined = new Set<string>();
  private readonly recent: HuntEvent[] = [];
  private readonly o: Required<TrafficOptions>;

  constructor(options: TrafficOptions) {
    this.o = {
      cluesPerHunt: 20,
      treasuresPerHunt: 5,
      duplicateFraction: 0,
      invalidFraction: 0,
      lateClaimFraction: 0,
      lateByMs: 30_000,
      random: Math.random,
      now: Date.now,
      ...options,
    };
  }

  next(): TrafficRecord {
    const r = this.o.random();
    if (r < this.o.invalidFraction) return this.invalid();
    if (r < this.o.invalidFraction + this.o.duplicateFraction && this.recent.length > 0) return this.duplicate();
    const event = this.event();
    this.recent.push(event);
    if (this.recent.length > 1000) this.recent.shift();
    return { key: event.huntId, value: Buffer.from(JSON.stringify(event)), event, kind: 'event' };
  }

  private pick(n: number): number {
    return Math.floor(this.o.random() * n);
  }

  private event(): HuntEvent {
    const huntId = `hunt-${this.pick(this.o.hunts)}`;
    const playerId = `player-${this.pick(this.o.playersPerHunt)}`;
    const base = { eventId: randomUUID(), schemaVersion: 1 as const, huntId, playerId, occurredAt: new Date(this.o.now()).toISOString() };
    const key = `${huntId}/${playerId}`;
    if (!this.joined.has(key)) {
      this.joined.add(key);
      return { ...base, type: 'player.joined', payload: { displayName: `Player ${playerId.slice(7)} of ${huntId}` } };
    }
    const r = this.o.random();
    if (r < 0.6) return { ...base, type: 'clue.found', payload: { clueId: `clue-${this.pick(this.o.cluesPerHunt)}`, points: 10 * (1 + this.pick(10)) } };
    if (r < 0.78) return { ...base, type: 'hint.used', payload: { clueId: `clue-${this.pick(this.o.cluesPerHunt)}`, penalty: 5 * (1 + this.pick(4)) } };
    if (r < 0.96) {
      const late = this.o.random() < this.o.lateClaimFraction;
      const occurredAt = late ? new Date(this.o.now() - this.o.lateByMs).toISOString() : base.occurredAt;
      return { ...base, occurredAt, type: 'treasure.claimed', payload: { treasureId: `treasure-${this.pick(this.o.treasuresPerHunt)}`, points: 500 } };
    }
    if (r < 0.98) {
      this.joined.delete(key);
      return { ...base, type: 'player.left', payload: {} };
    }
    return { ...base, type: 'player.joined', payload: {} };
  }

  private duplicate(): TrafficRecord {
    const original = this.recent[this.pick(this.recent.length)] as HuntEvent;
    // Half the duplicates differ in payload: the eventId alone must decide.
    const copy = this.o.random() < 0.5 ? original : ({ ...original, occurredAt: new Date(this.o.now()).toISOString() } as HuntEvent);
    return { key: original.huntId, value: Buffer.from(JSON.stringify(copy)), kind: 'duplicate' };
  }

  private invalid(): TrafficRecord {
    const huntId = `hunt-${this.pick(this.o.hunts)}`;
    const valid = { eventId: randomUUID(), type: 'clue.found', schemaVersion: 1, huntId, playerId: 'player-0', occurredAt: new Date(this.o.now()).toISOString(), payload: { clueId: 'clue-0', points: 10 } };
    const variants: (() => string)[] = [
      () => '{"eventId": "broken',
      () => JSON.stringify({ ...valid, type: 'treasure.buried' }),
      () => JSON.stringify({ ...valid, payload: { clueId: 'clue-0', points: 5000 } }),
      () => JSON.stringify({ ...valid, occurredAt: new Date(this.o.now() + 3_600_000).toISOString() }),
      () => JSON.stringify({ ...valid, payload: { clueId: 'clue-0', points: 10, note: 'x'.repeat(MAX_EVENT_BYTES) } }),
    ];
    return { key: huntId, value: Buffer.from((variants[this.pick(variants.length)] as () => string)()), kind: 'invalid' };
  }
}
