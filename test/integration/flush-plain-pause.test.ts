/**
 * The hot path's pause of plain inserts (known-events.ts) counts micro-batches that store
 * events: a micro-batch of rejects only stores none, and must not use up the pause, or a
 * stream of bad records would end it early and the next batches would pay for the conflicts
 * the pause is there to spare. Real Postgres: the flush commits each batch.
 */
import { describe, expect, it } from 'vitest';
import { createFlush } from '../../src/ingest/flush';
import { KnownEvents, PAUSE_AFTER_CONFLICT } from '../../src/ingest/known-events';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { BatchSizing } from '../../src/ingest/sizing';
import { createLogger } from '../../src/log';
import { classifySlice, type SourceRecord } from '../../src/pipeline/classify';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { uniqueName } from '../helpers/wait';

const db = useTestDatabase();
const topic = 'flush-pause';

/** A flush of one lane, with `known`'s pause. */
function flushWith(known: KnownEvents) {
  return createFlush({
    pool: db.pool,
    groupId: uniqueName('flush-pause'),
    metrics: createIngestMetrics(),
    logger: createLogger({ logLevel: 'fatal' }),
    sizing: new BatchSizing({ mode: 'fixed', maxBatchEvents: 5000, lingerMs: 1, freshnessTargetMs: 50 }),
    isStopping: () => false,
    onCommitted: () => {},
    onRejectsQuarantined: () => {},
    knownEvents: known,
  });
}

/** One micro-batch of `records` read from partition 0 of the topic. */
function work(records: SourceRecord[]) {
  const last = BigInt(records[records.length - 1]!.offset);
  return [{ slice: classifySlice(topic, 0, records, new Date()), topic, partition: 0, nextOffset: last + 1n, highWatermark: last + 1n, recordCount: records.length, byteCount: 0, heartbeat: async () => {} }];
}

let offset = 0;
const broken = (): SourceRecord => ({ offset: String(offset++), key: null, value: Buffer.from('{"eventId": "broken'), timestamp: String(Date.now()) });
const event = (): SourceRecord => ({ offset: String(offset++), key: null, value: Buffer.from(JSON.stringify(clueFound({ eventId: uniqueName('pause-event'), huntId: 'pause-hunt' }))), timestamp: String(Date.now()) });

/** How many more micro-batches the pause holds back. */
function pausedFor(known: KnownEvents): number {
  let held = 0;
  while (!known.pause.take()) held++;
  return held;
}

describe('the pause of plain inserts after a conflict', () => {
  it('is not used up by micro-batches of rejects only, and is by one that stores events', async () => {
    const known = new KnownEvents();
    known.pause.conflicted();
    const flush = flushWith(known);
    for (let i = 0; i < 3; i++) await flush(work([broken()]));
    await flush(work([event(), broken()]));
    expect(pausedFor(known)).toBe(PAUSE_AFTER_CONFLICT - 1);
    const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM quarantine WHERE source_topic = $1`, [topic]);
    expect(rows[0]!.n).toBe(4);
  });
});
