/**
 * Sequences behind the rows they numbered (a restore, or a switchover through logical
 * replication, which does not carry sequences), on the real Postgres: inserts draw values
 * already taken. Before, the events' seq collisions were blamed on the records, and valid
 * events were quarantined as unprocessable; a quarantine id's failed the micro-batch on every
 * retry (its lane stopped until the retries had drawn past every stored id); a drift row's
 * recorded reconciled hunts as failing. Now the sequences are moved forward and the work
 * committed again, and start-up moves them, or stops naming the command that does.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ImportPipeline, prepareImport } from '../../src/batch/backfill/import-records';
import { createDlqReplayActivities, type ReplayTotals } from '../../src/correctness/dlq-replay-job';
import { createFlush } from '../../src/ingest/flush';
import { KnownEvents } from '../../src/ingest/known-events';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { BatchSizing } from '../../src/ingest/sizing';
import { createLogger } from '../../src/log';
import { classifySlice, type SourceRecord } from '../../src/pipeline/classify';
import { reconcileRecordingFailures } from '../../src/store/correctness/reconcile';
import { advanceSequences, sequenceProblemAtStartup } from '../../src/store/serial-sequences';
import { useTestDatabase } from '../helpers/database-fixture';
import { atSecond, clueFound, joined } from '../helpers/event-builders';
import { applyInOneTransaction } from '../helpers/stored-events';
import { uniqueName } from '../helpers/wait';
import { withTimeout } from '../../src/time-limit';

const db = useTestDatabase();
const topic = 'seq-behind';
const logger = createLogger({ logLevel: 'fatal' });

let offset = 0;
function work(count: number, rejects = 0) {
  const records: SourceRecord[] = Array.from({ length: count + rejects }, (_, i) => ({
    offset: String(offset++),
    key: null,
    value: Buffer.from(i < count ? JSON.stringify(clueFound({ eventId: uniqueName('seq-event'), huntId: 'seq-hunt', clueId: uniqueName('clue') })) : `not json ${offset}`),
    timestamp: String(Date.now()),
  }));
  const last = BigInt(records[records.length - 1]!.offset);
  return [{ slice: classifySlice(topic, 0, records, new Date()), topic, partition: 0, nextOffset: last + 1n, highWatermark: last + 1n, recordCount: records.length, byteCount: 0, heartbeat: async () => {} }];
}

function flushOf(pool: pg.Pool) {
  return createFlush({
    pool,
    groupId: 'seq-behind',
    metrics: createIngestMetrics(),
    logger,
    sizing: new BatchSizing({ mode: 'fixed', maxBatchEvents: 5000, lingerMs: 1, freshnessTargetMs: 50 }),
    isStopping: () => false,
    onCommitted: () => {},
    onRejectsQuarantined: () => {},
    knownEvents: new KnownEvents(),
  });
}

const rewindSequence = (table = 'events', column = 'seq') => db.pool.query(`SELECT setval(pg_get_serial_sequence('${table}', '${column}'), 1)`);
const count = async (sql: string) => (await db.pool.query<{ n: number }>(sql)).rows[0]!.n;

describe('sequences behind the stored rows', () => {
  it('is moved forward by the hot path when an insert collides, and no valid event is quarantined', async () => {
    const commit = flushOf(db.pool);
    await commit(work(20));
    const newest = await count('SELECT max(seq)::int AS n FROM events');
    await rewindSequence();

    await commit(work(20));
    expect(await count('SELECT count(*)::int AS n FROM quarantine')).toBe(0);
    expect(await count('SELECT count(*)::int AS n FROM events')).toBe(40);
    // The new events drew seqs past every stored one: none fell in a gap below.
    expect(await count(`SELECT count(*)::int AS n FROM events WHERE seq <= ${newest}`)).toBe(20);
    expect(await advanceSequences(db.pool)).toEqual([]);
  });

  it("is moved forward by the hot path when a reject's quarantine row draws a taken id, and the micro-batch commits", async () => {
    const commit = flushOf(db.pool);
    await commit(work(1, 20));
    const newest = await count('SELECT max(id)::int AS n FROM quarantine');
    const events = await count('SELECT count(*)::int AS n FROM events');
    await rewindSequence('quarantine', 'id');

    // Before, every retry failed alike until the retries had drawn past the 20 stored ids, one
    // 5 s backoff after another: the limit ends that with a throw.
    await withTimeout(commit(work(5, 3)), 15_000);
    expect(await count('SELECT count(*)::int AS n FROM quarantine')).toBe(23);
    expect(await count(`SELECT count(*)::int AS n FROM quarantine WHERE id > ${newest}`)).toBe(3);
    expect(await count(`SELECT count(*)::int AS n FROM events`)).toBe(events + 5);
  });

  it('is moved forward by reconcile when a drift row draws a taken id, and the hunt is reconciled, not recorded as failing', async () => {
    // The later find stored first: the hot path credits it, the rules the earlier one (a credit drift).
    const drifted = async (huntId: string) => {
      await applyInOneTransaction(db.pool, [
        joined({ eventId: `${huntId}-j`, huntId, playerId: 'ann', occurredAt: atSecond(0) }),
        clueFound({ eventId: `${huntId}-later`, huntId, playerId: 'ann', clueId: 'c1', points: 10, occurredAt: atSecond(20) }),
      ]);
      await applyInOneTransaction(db.pool, [clueFound({ eventId: `${huntId}-earlier`, huntId, playerId: 'ann', clueId: 'c1', points: 10, occurredAt: atSecond(10) })]);
    };
    await drifted('drift-1');
    const failed: string[] = [];
    const reconcile = (huntId: string, runId: string) =>
      reconcileRecordingFailures(db.pool, [huntId], runId, false, undefined, async (_, results, failures) => {
        failed.push(...failures.map((f) => f.error));
        expect(results).toHaveLength(failures.length === 0 ? 1 : 0);
      });
    await reconcile('drift-1', 'seq-run-1');
    await drifted('drift-2');
    await reconcile('drift-2', 'seq-run-2');
    // The next draw is 1, its retry's 2: both taken, so only moving the sequence lets it through.
    await db.pool.query(`SELECT setval(pg_get_serial_sequence('reconcile_drift', 'id'), 1, false)`);

    await reconcile('drift-1', 'seq-run-3');
    expect(failed).toEqual([]);
    expect(await count(`SELECT count(*)::int AS n FROM reconcile_drift WHERE run_id = 'seq-run-3'`)).toBe(1);
    expect(await count('SELECT count(*)::int AS n FROM reconcile_failures')).toBe(0);
  });

  it('is moved forward at start-up, and stops start-up, naming the command, where the role may not move it', async () => {
    await db.pool.query(`INSERT INTO events (event_id, hunt_id, player_id, type, occurred_at, payload, source) VALUES ('restored', 'h', 'p', 'player.left', now(), '{}', 'test')`);
    const newest = await count('SELECT max(seq)::int AS n FROM events');
    await rewindSequence();
    await db.pool.query(`INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail) VALUES ('seq-behind', 0, 1, 'x', 'invalid_json', 'test')`);
    const newestQuarantined = await count('SELECT max(id)::int AS n FROM quarantine');
    await rewindSequence('quarantine', 'id');
    expect(await sequenceProblemAtStartup(db.pool, logger)).toBeUndefined();
    expect(await count(`SELECT pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass)::int AS n`)).toBe(newest);
    expect(await count(`SELECT pg_sequence_last_value(pg_get_serial_sequence('quarantine', 'id')::regclass)::int AS n`)).toBe(newestQuarantined);

    // A role that writes events and quarantine rows: it may draw from their sequences (USAGE),
    // not set them (UPDATE). It may read reconcile's rows, but not write them (as one made for
    // ingest alone): those are not its to check.
    const role = uniqueName('seq_user').replace(/-/g, '_');
    await db.pool.query(`CREATE ROLE ${role}`);
    await db.pool.query(`GRANT SELECT, INSERT ON events, quarantine TO ${role}`);
    await db.pool.query(`GRANT SELECT ON reconcile_drift TO ${role}`);
    await db.pool.query(`GRANT USAGE ON SEQUENCE events_seq_seq, quarantine_id_seq TO ${role}`);
    const restricted = new pg.Pool({ connectionString: db.url, options: `-c role=${role}` });
    const warnings: string[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    try {
      // Not behind: checked (USAGE is enough to read it), nothing to move, nothing to say.
      expect(await sequenceProblemAtStartup(restricted, watched)).toBeUndefined();
      expect(warnings).toEqual([]);
      await rewindSequence();
      // Reconcile's behind too: not this role's to check (it could not even read the sequence).
      await db.pool.query(`INSERT INTO reconcile_drift (run_id, hunt_id, kind, subject_id) VALUES ('seq-startup', 'h', 'player', 'p'), ('seq-startup', 'h', 'player', 'q')`);
      await rewindSequence('reconcile_drift', 'id');
      const problem = await sequenceProblemAtStartup(restricted, logger);
      expect(problem).toMatch(
        new RegExp(`sequence public.events_seq_seq is at 1, behind the newest stored value ${newest} .* run SELECT setval\\(pg_get_serial_sequence\\('events', 'seq'\\), \\(SELECT max\\(seq\\) FROM events\\)\\);.* as its owner`),
      );
      expect(problem).not.toContain('reconcile_drift_id_seq');
      await advanceSequences(db.pool);
    } finally {
      await restricted.end();
      await db.pool.query(`DROP OWNED BY ${role}`);
      await db.pool.query(`DROP ROLE ${role}`);
    }
  });

  it('is moved forward by a backfill whose insert collides, which commits its part again', async () => {
    const before = await count('SELECT max(seq)::int AS n FROM events');
    await rewindSequence();
    const origin = { topic: 'file:seq-behind.ndjson', partition: 0, sourceLabel: 'backfill:seq-behind' };
    const options = { dryRun: false, groupId: 'backfill:seq-behind', lanes: 2 };
    const records = Array.from({ length: 30 }, (_, i) => ({
      offset: String(i),
      key: null,
      value: Buffer.from(JSON.stringify(clueFound({ eventId: `backfilled-${i}`, huntId: `seq-hunt-${i % 3}`, clueId: `c${i}` }))),
      timestamp: '0',
    }));
    const pipeline = new ImportPipeline(db.pool, options);
    await pipeline.push(await prepareImport(origin, records, options), () => undefined);
    await pipeline.drain();
    await pipeline.settle();
    expect(await count(`SELECT count(*)::int AS n FROM events WHERE event_id LIKE 'backfilled-%' AND seq > ${before}`)).toBe(30);
    expect(await count(`SELECT count(*)::int AS n FROM quarantine WHERE source_topic = '${origin.topic}'`)).toBe(0);
  });

  it('is moved forward by a DLQ replay before it inserts, so the records it replays are stored, not refused again', async () => {
    const replayed = Array.from({ length: 3 }, (_, i) => clueFound({ eventId: `replayed-${i}`, huntId: 'seq-hunt', clueId: `r${i}` }));
    await db.pool.query(
      `INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail)
       SELECT 'seq-behind-dlq', 0, o, v, 'unprocessable', 'test' FROM unnest($1::bytea[]) WITH ORDINALITY AS u(v, o)`,
      [replayed.map((e) => Buffer.from(JSON.stringify(e)))],
    );
    const before = await count('SELECT max(seq)::int AS n FROM events');
    await rewindSequence();
    const { replayQuarantined } = createDlqReplayActivities({ pool: db.pool });
    const totals = (await new MockActivityEnvironment({ workflowExecution: { workflowId: 'seq-behind-dlq', runId: 'r1' } }).run(replayQuarantined, { batchSize: 10, dryRun: false, reasons: ['unprocessable'] })) as ReplayTotals;
    expect(totals).toMatchObject({ replayed: 3, stillInvalid: {} });
    expect(await count(`SELECT count(*)::int AS n FROM events WHERE event_id LIKE 'replayed-%' AND seq > ${before}`)).toBe(3);
  });
});

