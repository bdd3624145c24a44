/**
 * The soak's final check, independent of the pipeline's own code paths: what each record in
 * the input topic (read back, so a retried send that landed twice counts as what it is) and
 * each line of the backfill file had to become, against what Postgres and the DLQ hold.
 *
 * - every valid eventId stored (0 lost), none stored that was never sent;
 * - nothing counted twice: each hunt's events_applied equals its stored events, and the
 *   clue credits and hint penalties (which late events cannot change) equal the reference
 *   fold's, both before the final reconcile could repair anything;
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
  creditsMatchFold: boolean;
  /** A few credits or penalties found on one side only. */
  creditDifferences: string[];
}

/** Before the final reconcile: nothing counted twice, by counters and credits that late events cannot change. */
export async function checkCounts(pool: pg.Pool, expected: HuntEvent[]): Promise<CountCheck> {
  const { rows } = await pool.query<{ hunt_id: string; applied: number; stored: number }>(
    `SELECT h.hunt_id, h.events_applied AS applied, (SELECT count(*)::int FROM events e WHERE e.hunt_id = h.hunt_id) AS stored FROM hunts h`,
  );
  const fold = foldEvents(expected);
  const live = await readProjection(pool);
  const rowsOf = (r: FoldResult) => new Set([...r.clueCredits.map((c) => `found ${JSON.stringify(c)}`), ...r.hintPenalties.map((h) => `hint ${JSON.stringify(h)}`)]);
  const folded = rowsOf(fold);
  const stored = rowsOf(live);
  const differences = [...[...folded].filter((x) => !stored.has(x)).map((x) => `fold only: ${x}`), ...[...stored].filter((x) => !folded.has(x)).map((x) => `live only: ${x}`)];
  return {
    huntsChecked: rows.length,
    huntsWithEventsAppliedMismatch: rows.filter((r) => Number(r.applied) !== Number(r.stored)).map((r) => `${r.hunt_id} (${r.applied} applied, ${r.stored} stored)`),
    creditsMatchFold: differences.length === 0,
    creditDifferences: differences.slice(0, 10),
  };
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
