/**
 * The soak's final check, independent of the pipeline's own code paths: what each record in
 * the input topic (read back, so a retried send that landed twice counts as what it is) and
 * each line of the backfill file had to become, against what Postgres and the DLQ hold.
 *
 * - every valid eventId stored (0 lost), none stored that was never sent;
 * - nothing counted twice or lost, before the final reconcile could repair anything: each
 *   hunt's events_applied equals its stored events; the same clues, hints and treasures are
 *   credited as in the reference fold, each to an event of its own key with that event's
 *   points; and every player's score, clue count and wins add up to its credits, penalties
 *   and wins. Which event holds a credit is not checked against the fold there: the stream
 *   credits the first to arrive, and the reprocess and reconcile faults re-decide by event
 *   time mid-run (the contract's provisional results); it is counted;
 * - after the final reconcile, every hunt's projection equals the reference fold;
 * - quarantine holds exactly the expected rejects (position and reason), once; the DLQ holds
 *   a copy of each (at-least-once: extra copies are counted, not hidden).
 */
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import type { HuntEvent } from '../../src/events/schema';
import type { RejectReason } from '../../src/events/validate';
import { foldEvents, type FoldResult } from '../../src/rules/reference';
import { readProjection } from '../../src/store/read/projection';
import { valueHash } from './traffic';

export interface TopicRecord {
  partition: number;
  offset: string;
  value: Buffer | null;
  headers: Record<string, string>;
}

/**
 * Hands every record of `topic`, from the log start to the end it has now, to `onRecord`,
 * partition by partition in offset order (records are not kept: the topic can hold millions).
 */
export async function forEachRecord(kafka: Kafka, topic: string, onRecord: (record: TopicRecord) => void): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
  await admin.disconnect();
  const remaining = new Set([...ends].filter(([, high]) => high > 0n).map(([p]) => p));
  if (remaining.size === 0) return;
  const consumer = kafka.consumer({ groupId: `soak-verify-${Date.now()}`, maxBytesPerPartition: 4 * 1024 * 1024 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  await consumer.run({
    partitionsConsumedConcurrently: 1,
    eachBatch: async ({ batch }) => {
      const end = ends.get(batch.partition) ?? 0n;
      for (const m of batch.messages) {
        if (BigInt(m.offset) >= end) break;
        const headers = Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, String(v)]));
        onRecord({ partition: batch.partition, offset: m.offset, value: m.value, headers });
      }
      if (BigInt(batch.lastOffset()) + 1n >= end) remaining.delete(batch.partition);
      if (remaining.size === 0) done();
    },
  });
  await finished;
  await consumer.disconnect();
}

export interface Expected {
  /** Valid events, first per eventId in partition order (the consumer's "first stored"). */
  events: HuntEvent[];
  /** `partition:offset` → reason, for the input topic's rejects. */
  rejects: Map<string, RejectReason>;
}

/** What every record of the input topic had to become. */
export async function expectedFromTopic(kafka: Kafka, topic: string, expectedRejects: Map<string, RejectReason>): Promise<Expected> {
  const events: HuntEvent[] = [];
  const seen = new Set<string>();
  const rejects = new Map<string, RejectReason>();
  await forEachRecord(kafka, topic, (r) => {
    const reason = expectedRejects.get(valueHash(r.value));
    if (reason) {
      rejects.set(`${r.partition}:${r.offset}`, reason);
      return;
    }
    const event = JSON.parse((r.value as Buffer).toString('utf8')) as HuntEvent;
    if (seen.has(event.eventId)) return;
    seen.add(event.eventId);
    events.push(event);
  });
  return { events, rejects };
}

/** The positions of the DLQ's copies of records from `inputTopic` (one entry per copy). */
export async function dlqPositions(kafka: Kafka, dlqTopic: string, inputTopic: string): Promise<string[]> {
  const positions: string[] = [];
  await forEachRecord(kafka, dlqTopic, (r) => {
    if (r.headers['source.topic'] === inputTopic) positions.push(`${r.headers['source.partition']}:${r.headers['source.offset']}`);
  });
  return positions;
}

export interface CountCheck {
  huntsChecked: number;
  huntsWithEventsAppliedMismatch: string[];
  /** Credits, penalties, wins and player totals as described above. */
  creditsConsistent: boolean;
  /** A few of what broke it. */
  creditProblems: string[];
  /** Credits, penalties and wins held by another event than the fold's pick (provisional). */
  provisionalCredits: number;
}

/** Before the final reconcile: nothing counted twice or lost, whatever order events came in. */
export async function checkCounts(pool: pg.Pool, expected: HuntEvent[]): Promise<CountCheck> {
  const { rows } = await pool.query<{ hunt_id: string; applied: number; stored: number }>(
    `SELECT h.hunt_id, h.events_applied AS applied, (SELECT count(*)::int FROM events e WHERE e.hunt_id = h.hunt_id) AS stored FROM hunts h`,
  );
  const { problems, provisional } = creditConsistency(await readProjection(pool), expected);
  return {
    huntsChecked: rows.length,
    huntsWithEventsAppliedMismatch: rows.filter((r) => Number(r.applied) !== Number(r.stored)).map((r) => `${r.hunt_id} (${r.applied} applied, ${r.stored} stored)`),
    creditsConsistent: problems.length === 0,
    creditProblems: problems.slice(0, 10),
    provisionalCredits: provisional,
  };
}

/**
 * A live projection against the events that made it, whatever order they were applied in:
 * what is wrong (see the file's comment), and how many credits another event than the
 * fold's pick holds.
 */
export function creditConsistency(live: FoldResult, events: readonly HuntEvent[]): { problems: string[]; provisional: number } {
  const liveCredits = credited(live);
  const foldCredits = credited(foldEvents(events));
  return {
    problems: [...creditProblems(liveCredits, foldCredits, new Map(events.map((e) => [e.eventId, e]))), ...playerTotalProblems(live)],
    provisional: [...liveCredits].filter(([key, c]) => foldCredits.get(key)?.eventId !== c.eventId).length,
  };
}

interface Credited {
  eventId: string;
  huntId: string;
  playerId: string;
  /** Signed: a hint's penalty counts against the score. */
  points: number;
  /** What the event must be to hold this credit. */
  type: HuntEvent['type'];
  subject: string;
}

/** `found|hint|won <hunt>/...` → the credit, penalty or win, from a projection in the fold's shape. */
function credited(r: FoldResult): Map<string, Credited> {
  return new Map([
    ...r.clueCredits.map((c): [string, Credited] => [`found ${c.huntId}/${c.playerId}/${c.clueId}`, { eventId: c.eventId, huntId: c.huntId, playerId: c.playerId, points: c.points, type: 'clue.found', subject: c.clueId }]),
    ...r.hintPenalties.map((h): [string, Credited] => [`hint ${h.huntId}/${h.playerId}/${h.clueId}`, { eventId: h.eventId, huntId: h.huntId, playerId: h.playerId, points: -h.penalty, type: 'hint.used', subject: h.clueId }]),
    ...r.treasureWinners.map((w): [string, Credited] => [`won ${w.huntId}/${w.treasureId}`, { eventId: w.eventId, huntId: w.huntId, playerId: w.playerId, points: w.points, type: 'treasure.claimed', subject: w.treasureId }]),
  ]);
}

/** The same keys credited on both sides, each live credit held by an event of its key, with its points. */
function creditProblems(liveCredits: Map<string, Credited>, foldCredits: Map<string, Credited>, events: Map<string, HuntEvent>): string[] {
  const problems: string[] = [];
  for (const key of foldCredits.keys()) if (!liveCredits.has(key)) problems.push(`${key}: credited by the fold, not live`);
  for (const [key, c] of liveCredits) {
    if (!foldCredits.has(key)) problems.push(`${key}: credited live, not by the fold`);
    if (!holds(events.get(c.eventId), c)) problems.push(`${key}: held by ${c.eventId}, which is not an event of this key with ${c.points} points`);
  }
  return problems;
}

/** `event` is one that can hold `credit`: its type, hunt, player, clue or treasure, and points. */
function holds(event: HuntEvent | undefined, credit: Credited): boolean {
  if (!event || event.type !== credit.type || event.huntId !== credit.huntId || event.playerId !== credit.playerId) return false;
  const payload = event.payload as { clueId?: string; treasureId?: string; points?: number; penalty?: number };
  const points = event.type === 'hint.used' ? -(payload.penalty ?? 0) : payload.points;
  return (payload.clueId ?? payload.treasureId) === credit.subject && points === credit.points;
}

/** Every live player's totals add up to its live credits, penalties and wins. */
function playerTotalProblems(live: FoldResult): string[] {
  const sums = new Map<string, { score: number; clues: number; wins: number }>();
  const add = (huntId: string, playerId: string, score: number, clues: number, wins: number) => {
    const key = `${huntId}/${playerId}`;
    const sum = sums.get(key) ?? { score: 0, clues: 0, wins: 0 };
    sums.set(key, { score: sum.score + score, clues: sum.clues + clues, wins: sum.wins + wins });
  };
  for (const c of live.clueCredits) add(c.huntId, c.playerId, c.points, 1, 0);
  for (const h of live.hintPenalties) add(h.huntId, h.playerId, -h.penalty, 0, 0);
  for (const w of live.treasureWinners) add(w.huntId, w.playerId, w.points, 0, 1);
  const problems: string[] = [];
  for (const p of live.players) {
    const sum = sums.get(`${p.huntId}/${p.playerId}`) ?? { score: 0, clues: 0, wins: 0 };
    if (p.score !== sum.score || p.cluesFound !== sum.clues || p.treasuresClaimed !== sum.wins) {
      problems.push(`${p.huntId}/${p.playerId}: score ${p.score}, clues ${p.cluesFound}, wins ${p.treasuresClaimed}; its credits add up to ${sum.score}, ${sum.clues}, ${sum.wins}`);
    }
  }
  return problems;
}

export interface FinalCheck {
  expectedEvents: number;
  storedEvents: number;
  lost: number;
  lostSample: string[];
  unexpected: number;
  huntsMismatched: string[];
  expectedRejects: number;
  quarantined: number;
  quarantineMissing: number;
  quarantineWrongReason: number;
  quarantineUnexpected: number;
  dlqDistinct: number;
  dlqMissing: number;
  dlqExtraCopies: number;
  dlqUnexpected: number;
}

export async function checkFinal(pool: pg.Pool, expected: Expected, dlqCopies: string[], inputTopic: string): Promise<FinalCheck> {
  const stored = new Set((await pool.query<{ event_id: string }>('SELECT event_id FROM events')).rows.map((r) => r.event_id));
  const expectedIds = new Set(expected.events.map((e) => e.eventId));
  const lost = [...expectedIds].filter((id) => !stored.has(id));
  const unexpected = [...stored].filter((id) => !expectedIds.has(id));

  const fold = foldEvents(expected.events);
  const live = await readProjection(pool);
  const huntsMismatched = mismatchedHunts(fold, live);

  const { rows: quarantine } = await pool.query<{ source_partition: number; source_offset: string; reason: string }>(
    'SELECT source_partition, source_offset::text, reason FROM quarantine WHERE source_topic = $1',
    [inputTopic],
  );
  const quarantined = new Map(quarantine.map((q) => [`${q.source_partition}:${q.source_offset}`, q.reason]));
  const dlqDistinct = new Set(dlqCopies);
  return {
    expectedEvents: expectedIds.size,
    storedEvents: stored.size,
    lost: lost.length,
    lostSample: lost.slice(0, 10),
    unexpected: unexpected.length,
    huntsMismatched,
    expectedRejects: expected.rejects.size,
    quarantined: quarantined.size,
    quarantineMissing: [...expected.rejects.keys()].filter((k) => !quarantined.has(k)).length,
    quarantineWrongReason: [...expected.rejects].filter(([k, reason]) => quarantined.has(k) && quarantined.get(k) !== reason).length,
    quarantineUnexpected: [...quarantined.keys()].filter((k) => !expected.rejects.has(k)).length,
    dlqDistinct: dlqDistinct.size,
    dlqMissing: [...expected.rejects.keys()].filter((k) => !dlqDistinct.has(k)).length,
    dlqExtraCopies: dlqCopies.length - dlqDistinct.size,
    dlqUnexpected: [...dlqDistinct].filter((k) => !expected.rejects.has(k)).length,
  };
}

/** Hunts whose players, credits or winners differ between the fold and the live tables. */
function mismatchedHunts(fold: FoldResult, live: FoldResult): string[] {
  const byHunt = (r: FoldResult) => {
    const hunts = new Map<string, string[]>();
    const add = (huntId: string, row: unknown) => {
      const rows = hunts.get(huntId) ?? [];
      rows.push(JSON.stringify(row));
      hunts.set(huntId, rows);
    };
    for (const p of r.players) add(p.huntId, p);
    for (const c of r.clueCredits) add(c.huntId, c);
    for (const h of r.hintPenalties) add(h.huntId, h);
    for (const w of r.treasureWinners) add(w.huntId, w);
    return hunts;
  };
  const a = byHunt(fold);
  const b = byHunt(live);
  const hunts = new Set([...a.keys(), ...b.keys()]);
  return [...hunts].filter((h) => (a.get(h) ?? []).join('\n') !== (b.get(h) ?? []).join('\n')).sort();
}
