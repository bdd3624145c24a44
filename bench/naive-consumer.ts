/**
 * The baseline the issue compares against: the consumer most tutorials write. kafkajs
 * eachMessage with Kafka auto-commit, and per event one INSERT of the raw event and one
 * upsert of the player's score, each its own autocommitted statement (so each waits for its
 * own WAL flush). No validation beyond JSON.parse, no exactly-once: it is only a speed
 * reference. It is slow, so it runs for a fixed window and reports events / window.
 */
import type { Kafka } from 'kafkajs';
import pg from 'pg';

export interface NaiveOptions {
  topic: string;
  groupId: string;
  databaseUrl: string;
  windowMs: number;
  /** Records in the topic: the window also closes when all are processed. */
  records: number;
}

export interface NaiveResult {
  processed: number;
  /** Records whose handler threw (invalid JSON, missing fields); skipped, counted as processed. */
  failed: number;
  windowSeconds: number;
  eventsPerSecond: number;
}

interface LooseEvent {
  eventId: string;
  huntId: string;
  playerId: string;
  type: string;
  occurredAt: string;
  payload: { points?: number; penalty?: number };
}

function pointsOf(e: LooseEvent): number {
  if (e.type === 'clue.found' || e.type === 'treasure.claimed') return e.payload.points ?? 0;
  if (e.type === 'hint.used') return -(e.payload.penalty ?? 0);
  return 0;
}

export async function runNaiveConsumer(kafka: Kafka, options: NaiveOptions): Promise<NaiveResult> {
  const db = new pg.Client({ connectionString: options.databaseUrl });
  await db.connect();
  const consumer = kafka.consumer({ groupId: options.groupId });
  let processed = 0;
  let failed = 0;
  let windowStart: number | undefined;
  let windowProcessed = 0;
  let windowEnd = 0;
  let closeWindow: () => void = () => undefined;
  const windowClosed = new Promise<void>((resolve) => (closeWindow = resolve));

  await consumer.connect();
  await consumer.subscribe({ topic: options.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: true,
    eachMessage: async ({ partition, message }) => {
      // The window opens on the first message, so joining the group is not counted.
      windowStart ??= performance.now();
      try {
        const e = JSON.parse(message.value?.toString('utf8') ?? 'null') as LooseEvent;
        await db.query(
          `INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING`,
          [e.eventId, e.huntId, e.playerId, e.type, e.occurredAt, JSON.stringify(e.payload), `kafka:${options.topic}:${partition}:${message.offset}`],
        );
        await db.query(
          `INSERT INTO player_scores (hunt_id, player_id, score) VALUES ($1, $2, $3)
           ON CONFLICT (hunt_id, player_id) DO UPDATE SET score = player_scores.score + excluded.score`,
          [e.huntId, e.playerId, pointsOf(e)],
        );
      } catch {
        failed++;
      }
      processed++;
      const now = performance.now();
      if (windowProcessed === 0 && (now - windowStart >= options.windowMs || processed >= options.records)) {
        windowProcessed = processed;
        windowEnd = now;
        closeWindow();
      }
    },
  });
  await windowClosed;
  const windowSeconds = (windowEnd - (windowStart ?? windowEnd)) / 1000;
  await consumer.disconnect();
  await db.end();
  return { processed: windowProcessed, failed, windowSeconds, eventsPerSecond: Math.round(windowProcessed / windowSeconds) };
}
