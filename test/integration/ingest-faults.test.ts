/**
 * Faults around the hot path, on the real Kafka and Postgres: a stall shows on /readyz (503
 * with a reason within the stall limit plus 5 s, 200 after), in a metric and in the log; a
 * crash before a partition's first Postgres commit loses nothing; a retention gap is logged,
 * counted and passed (or held, if so configured); a log that went back under the stored
 * position (the topic recreated) is read again from its start; a port that cannot be bound stops the
 * process before it consumes anything.
 */
import fs from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { createTestTopics, endOffsets, projectionOf, sendRecords, startIngestProcess, testKafka, waitCaughtUp, type IngestProcess } from '../helpers/ingest';
import {
  asAdmin, asRecords, dropConnections, eventCount, eventsFor, expectNoLogReset, metricsOf, readyz, recordsRead, recreateTopic, send, sleep, storedOffset, useIngestFaultKit,
} from '../helpers/ingest-faults';
import { forwardDatabase } from '../helpers/tcp-forward';
import { waitFor } from '../helpers/wait';

const { database, track, runIngest, waitStored, onCleanup } = useIngestFaultKit();

describe('the stall signal', () => {
  it('answers 503 with a reason within the stall limit plus 5 s while Postgres refuses writes, and 200 after', async () => {
    const stallLimitMs = 4000;
    const db = await database();
    const topics = await createTestTopics(2);
    const ingest = track(startIngestProcess(db.url, topics, { INGEST_STALL_LIMIT_MS: String(stallLimitMs) }));
    await ingest.ready();
    const before = eventsFor('s', 200);
    await send(topics.events, before);
    await waitCaughtUp(db.pool, topics);
    expect((await readyz(ingest)).status).toBe(200);

    // Every new transaction of this database is read-only from now on: commits fail (an outage, retried).
    await asAdmin(`ALTER DATABASE ${db.name} SET default_transaction_read_only = on`);
    await dropConnections(db);
    const during = eventsFor('s', 200, 200);
    await send(topics.events, during);
    const stalledFrom = Date.now();
    const notReady = await waitFor('readiness to turn 503', async () => {
      const answer = await readyz(ingest);
      return answer.status === 503 ? answer : undefined;
    }, { timeoutMs: stallLimitMs + 15_000, intervalMs: 200 });
    expect(Date.now() - stalledFrom).toBeLessThanOrEqual(stallLimitMs + 5000);
    expect(notReady.body.error).toMatch(/commit lane \d+ .* has not committed for \d+ s|partition\(s\) .* no progress in Postgres/);
    expect(notReady.body.error).not.toMatch(/127\.0\.0\.1|hunt@|ECONN|SQLSTATE/);
    expect(await metricsOf(ingest)).toMatch(/hunt_ingest_stalled 1\b/);
    // The partition check may turn readiness red first (its clock starts at the last commit,
    // the lane's when it took the records): the lane's gauge reaches the limit soon after.
    await waitFor('the lane gauge to pass the stall limit', async () => /hunt_ingest_lane_stalled_seconds\{lane="\d"\} ([4-9]|\d\d)/.test(await metricsOf(ingest)), {
      timeoutMs: 10_000,
      intervalMs: 250,
    });
    await waitFor('the stall in the log', () => fs.readFileSync(ingest.logFile, 'utf8').includes('ingest not ready'), { timeoutMs: 10_000 });

    await asAdmin(`ALTER DATABASE ${db.name} RESET default_transaction_read_only`);
    await dropConnections(db);
    await waitFor('readiness to turn 200 again', async () => (await readyz(ingest)).status === 200, { timeoutMs: 30_000, intervalMs: 200 });
    await waitCaughtUp(db.pool, topics);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...before, ...during]));
    expect(await metricsOf(ingest)).toMatch(/hunt_ingest_stalled 0\b/);
  });

  it('reaches the stall gauge and the log within the stall limit when Postgres stops answering, with nobody polling /readyz', { timeout: 120_000 }, async () => {
    const stallLimitMs = 4000;
    const db = await database();
    const topics = await createTestTopics(2);
    const { forwarder: postgres, url } = await forwardDatabase(db.url);
    onCleanup(() => postgres.close());
    const ingest = track(startIngestProcess(url, topics, { INGEST_STALL_LIMIT_MS: String(stallLimitMs) }));
    await ingest.ready();
    await send(topics.events, eventsFor('frozen', 100));
    await waitCaughtUp(db.pool, topics);

    // Connections stay open and nothing answers: every query waits for its 2-minute timeout.
    postgres.freeze();
    await send(topics.events, eventsFor('frozen', 100, 100));
    const frozenAt = Date.now();
    // Only /metrics, as Prometheus reads it: before, the monitor's tick waited on the frozen
    // Postgres too, and the gauge stayed 0 for 120 s.
    await waitFor('hunt_ingest_stalled to turn 1', async () => /^hunt_ingest_stalled 1$/m.test(await metricsOf(ingest)), { timeoutMs: stallLimitMs + 20_000, intervalMs: 250 });
    // Before: 11 s here (a new connection's 10 s connect timeout), 120 s on a pooled one.
    expect(Date.now() - frozenAt).toBeLessThanOrEqual(stallLimitMs + 5000);
    await waitFor('the stall in the log', () => fs.readFileSync(ingest.logFile, 'utf8').includes('ingest not ready'), { timeoutMs: 10_000 });
  });
});

describe('a connection dead without a word', () => {
  // Pooled connections dropped by the network (a NAT's or load balancer's state lost) while
  // Postgres is fine: each query on one waits for the client's 2-minute query timeout, the
  // lane's commit among them.
  it('is cut once its session sits idle while a query waits, and the lane commits on a new connection long before the query timeout', { timeout: 120_000 }, async () => {
    const db = await database();
    const topics = await createTestTopics(2);
    const { forwarder: postgres, url } = await forwardDatabase(db.url);
    onCleanup(() => postgres.close());
    const ingest = track(startIngestProcess(url, topics));
    await ingest.ready();
    const before = eventsFor('dropped', 100);
    await send(topics.events, before);
    await waitCaughtUp(db.pool, topics);

    postgres.freezeOpen();
    const after = eventsFor('dropped', 100, 100);
    await send(topics.events, after);
    // The query timeout is 120 s: within 60 s only a cut connection lets the lane commit.
    await waitCaughtUp(db.pool, topics, 60_000);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...before, ...after]));
    expect(await metricsOf(ingest)).toMatch(/^hunt_ingest_postgres_connections_cut_total [1-9]\d*$/m);
    expect(fs.readFileSync(ingest.logFile, 'utf8')).toMatch(/Postgres connection cut: its session was not working on the query/);
  });
});

describe('no loss window', () => {
  it('loses nothing when the consumer is killed before its first Postgres commit', async () => {
    const db = await database();
    const topics = await createTestTopics(2);
    // Hold the first commit: the hot path locks its hunts' fence rows before it writes anything.
    const locker = await db.pool.connect();
    let locked = true;
    const unlock = async () => {
      if (!locked) return;
      locked = false;
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
    };
    // If the test fails while the lock is held, the database's disposal would wait on it forever.
    onCleanup(unlock);
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE hunts IN ACCESS EXCLUSIVE MODE');
    const events = eventsFor('k', 500);
    // A short session, so the group notices the killed member quickly. Fixed 5,000-event
    // batches: while the first commit is held, one full batch may wait behind it, so all 500
    // records are read however the fetches split them (adaptive mode starts at 500 per batch,
    // and a first micro-batch of a partial fetch could leave the rest unread).
    const env = { INGEST_SESSION_TIMEOUT_MS: '6000', INGEST_BATCH_MODE: 'fixed' };
    const first = await runIngest(db, topics, env);
    await send(topics.events, events);
    // At least 500: a rebalance (a slow machine missing the short session) re-reads from Postgres's positions.
    await waitFor('every record to be read (and buffered)', async () => recordsRead(await metricsOf(first)) >= 500, { timeoutMs: 30_000 });
    // Longer than kafkajs's auto-commit interval (5 s): where Kafka's committed offsets run
    // ahead of Postgres, they would have been written by now.
    await sleep(6000);
    await first.kill('SIGKILL');
    await unlock();

    await runIngest(db, topics, env);
    await waitCaughtUp(db.pool, topics);
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
  });
});

describe('a retention gap', () => {
  async function gapSetup(policy: 'continue' | 'stop', logStart = 150) {
    const db = await database();
    const topics = await createTestTopics(1);
    const first = await runIngest(db, topics);
    const early = eventsFor(`g${policy}`, 100);
    await send(topics.events, early);
    await waitCaughtUp(db.pool, topics);
    await first.kill('SIGTERM');
    const late = eventsFor(`g${policy}`, 100, 100); // offsets 100-199
    await send(topics.events, late);
    // Retention, as the broker would apply it: the log now starts at offset 150 (by default).
    const admin = testKafka().admin();
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: [topics.events] }); // kafkajs needs the leaders loaded first
    await admin.deleteTopicRecords({ topic: topics.events, partitions: [{ partition: 0, offset: String(logStart) }] });
    await admin.disconnect();
    const second = track(startIngestProcess(db.url, topics, { INGEST_ON_RETENTION_GAP: policy }));
    return { db, topics, early, late, second };
  }

  it('is logged with the offsets lost, counted, and consumption goes on from the log start', async () => {
    const { db, topics, early, late, second } = await gapSetup('continue');
    await second.ready();
    await waitCaughtUp(db.pool, topics);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...early, ...late.slice(50)]));
    const log = fs.readFileSync(second.logFile, 'utf8');
    expect(log).toMatch(/retention deleted 50 records of .*\/0 before they were read/);
    expect(log).toMatch(/"firstLostOffset":"100","lastLostOffset":"149"/);
    expect(await metricsOf(second)).toMatch(/hunt_ingest_retention_gap_records_total\{topic="[^"]+",partition="0"\} 50\b/);
    expect((await readyz(second)).status).toBe(200);
  });

  it('is reported on a partition where retention left nothing to read: no fetch ever shows it, the monitor does', async () => {
    const { db, topics, second } = await gapSetup('continue', 200);
    await second.ready();
    await waitFor('the gap to be counted', async () => /hunt_ingest_retention_gap_records_total\{topic="[^"]+",partition="0"\} 100\b/.test(await metricsOf(second)), { timeoutMs: 30_000, intervalMs: 250 });
    // Stored with the partition's lane's next commit, behind what the lane held.
    await waitFor('the skip to be stored', async () => (await storedOffset(db, topics)) === 200n, { timeoutMs: 10_000, intervalMs: 100 });
    expect(fs.readFileSync(second.logFile, 'utf8')).toMatch(/"firstLostOffset":"100","lastLostOffset":"199"/);
    expect((await readyz(second)).status).toBe(200);
  });

  it('holds the partition, not ready, when configured to stop', async () => {
    const { db, early, second } = await gapSetup('stop');
    const answer = await waitFor('readiness to report the gap', async () => {
      const r = await fetch(`${second.apiUrl}/readyz`).catch(() => undefined);
      if (!r || r.status !== 503) return undefined;
      const body = (await r.json()) as { error?: string };
      return body.error?.includes('retention') ? body : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    expect(answer.error).toMatch(/partition 0 lost 50 records to retention \(offsets 100-149\)/);
    expect(await projectionOf(db.pool)).toEqual(foldEvents(early));
  });
});

describe('a log that went back', () => {
  it('is read again from its start when the topic was recreated under the stored position: nothing new lost, nothing counted twice', async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    const first = await runIngest(db, topics);
    const before = eventsFor('r', 100); // offsets 0-99
    await send(topics.events, before);
    await waitCaughtUp(db.pool, topics);
    await first.kill('SIGTERM');

    await recreateTopic(topics.events);
    // The new log: 30 new events, and 10 of the old ones again (as a producer's retry would).
    const after = eventsFor('r', 30, 100);
    await send(topics.events, [...before.slice(0, 10), ...after]); // offsets 0-39, under the stored 100

    const second = await runIngest(db, topics);
    await waitStored(db, topics, 40n, 'the new log to be applied');
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...before, ...after]));
    const log = fs.readFileSync(second.logFile, 'utf8');
    expect(log).toMatch(/ends at offset 40, before the position 100: the topic was recreated or its log truncated; reading it again from offset 0/);
    expect(await metricsOf(second)).toMatch(/hunt_ingest_log_resets_total\{topic="[^"]+",partition="0"\} 1\b/);
    expect((await readyz(second)).status).toBe(200);
  });
});

describe('a member stopping', () => {
  it('commits what it buffered before it leaves the group: the member taking over reads none of it again', async () => {
    const db = await database();
    const topics = await createTestTopics(2);
    const leaving = await runIngest(db, topics);
    const staying = await runIngest(db, topics);
    const hasPartitions = (ingest: IngestProcess, assigned: string) => async () => fs.readFileSync(ingest.logFile, 'utf8').includes(`"assigned":${assigned}`);
    await waitFor('the partitions to be shared', async () => (await hasPartitions(leaving, '[0]')()) || (await hasPartitions(leaving, '[1]')()), { timeoutMs: 30_000, intervalMs: 200 });
    const events = eventsFor('ho', 20); // over hunt-0..4: both partitions
    const reject = { key: 'hunt-0', value: '{"eventId": "half' };
    let exited: Promise<number | null> | undefined;
    let readByStaying: number | undefined;
    // Hold the hunts' fence rows, so the members' commits wait.
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`INSERT INTO hunts (hunt_id) SELECT 'hunt-' || i FROM generate_series(0, 4) AS i ON CONFLICT (hunt_id) DO UPDATE SET updated_at = now()`);
      await sendRecords(topics.events, [...asRecords(events), reject]);
      const readBoth = async () => recordsRead(await metricsOf(leaving)) + recordsRead(await metricsOf(staying)) === 21;
      await waitFor('the members to read the records', readBoth, { timeoutMs: 30_000, intervalMs: 200 });
      readByStaying = recordsRead(await metricsOf(staying));
      expect(readByStaying).toBeLessThan(21); // the leaving member holds records of its own
      exited = leaving.kill('SIGTERM');
      // Had it left first, the other member would take its partition over (within a heartbeat
      // or two) and read its records again; give it the time to, then let the commits go on,
      // well inside the leaving member's 15 s for its own (HANDOVER_COMMIT_MS).
      await waitFor('the other member to take both partitions', hasPartitions(staying, '[0,1]'), { timeoutMs: 8_000, intervalMs: 200 }).catch(() => undefined);
    } finally {
      await blocker.query('COMMIT');
      await blocker.end();
    }
    expect(await exited).toBe(0);
    await waitCaughtUp(db.pool, topics);
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
    // The leaving member's records were read once, by it: the other took its partition over and read nothing more.
    await waitFor('the other member to take both partitions after the leave', hasPartitions(staying, '[0,1]'), { timeoutMs: 30_000, intervalMs: 200 });
    await sleep(1000); // a fetch of the partition taken over
    expect(recordsRead(await metricsOf(staying))).toBe(readByStaying);
    const admin = testKafka().admin();
    await admin.connect();
    const [dlq] = await admin.fetchTopicOffsets(topics.dlq).finally(() => admin.disconnect());
    expect(dlq?.high).toBe('1'); // one copy of the reject, not one from each member
  });
});

describe('a member stopping while a read of its API waits', () => {
  it('stops within its deadline and exits 0, without waiting out the read\'s statement limit', async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    const ingest = await runIngest(db, topics, { API_STATEMENT_TIMEOUT_MS: '60000' });
    // A leaderboard read held behind a lock for up to its 60 s limit (a slow disk, a big hunt).
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE player_scores IN ACCESS EXCLUSIVE MODE');
      const reading = fetch(`${ingest.apiUrl}/hunts/h/leaderboard`).catch(() => undefined);
      await waitFor('the read to wait on the lock', async () => {
        const { rows } = await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND application_name = 'hunt-read-api'`);
        return rows.length > 0;
      }, { timeoutMs: 10_000, intervalMs: 100 });
      const started = Date.now();
      // Before, the stop closed the read API first and waited for its pool, so for the read:
      // past the stop's 25 s deadline, an exit 1 that said Postgres or Kafka was not answering.
      expect(await ingest.kill('SIGTERM')).toBe(0);
      expect(Date.now() - started).toBeLessThan(15_000);
      await reading;
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
  }, 60_000);
});

describe("an operator's move of a group's position (docs/operators.md)", () => {
  // Positions live in Postgres; the documented way to skip (or replay) records: every member
  // stopped, next_offset and start_offset set together, the members started again.
  it.each([
    { move: 'skips', to: 400n },
    { move: 'replays', to: 100n },
  ])('$move records from the position set, with no log reset', async ({ to }) => {
    const db = await database();
    const topics = await createTestTopics(1);
    const first = eventsFor('moved', 300);
    const ingest = await runIngest(db, topics);
    await send(topics.events, first);
    await waitStored(db, topics, 300n, 'the first 300 to commit');
    expect(await ingest.kill('SIGTERM')).toBe(0);
    const second = eventsFor('moved', 200, 300);
    await send(topics.events, second);
    await db.pool.query('UPDATE consumer_offsets SET next_offset = $3, start_offset = $3 WHERE group_id = $1 AND topic = $2 AND partition = 0', [
      topics.groupId,
      topics.events,
      to.toString(),
    ]);
    const restarted = await runIngest(db, topics);
    await waitStored(db, topics, 500n, 'every record to commit');
    const applied = to > 300n ? [...first, ...second.slice(Number(to) - 300)] : [...first, ...second];
    expect(await projectionOf(db.pool)).toEqual(foldEvents(applied));
    expect(await eventCount(db)).toBe(applied.length);
    expect(recordsRead(await metricsOf(restarted))).toBe(500 - Number(to));
    await expectNoLogReset(restarted);
  });
});

describe('rejects of a new log', () => {
  // Quarantine rows were unique per offset alone: after a recreation, a new reject at an
  // offset the old log had quarantined was dropped by ON CONFLICT DO NOTHING, without a trace.
  it('are quarantined at offsets the old log had rejects at too, and a redelivered reject once', async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    const first = await runIngest(db, topics);
    const bad = (log: string) => Array.from({ length: 5 }, (_, i) => ({ key: 'k', value: `${log} log, not JSON ${i}` }));
    const before = eventsFor('q', 45);
    await sendRecords(topics.events, [...bad('old'), ...asRecords(before)]); // offsets 0-49
    await waitCaughtUp(db.pool, topics);
    await first.kill('SIGTERM');

    await recreateTopic(topics.events);
    const after = eventsFor('q', 15, 100);
    await sendRecords(topics.events, [...bad('new'), ...asRecords(after)]); // offsets 0-19, under the stored 50
    const second = await runIngest(db, topics);
    await waitStored(db, topics, 20n, 'the new log to be applied');
    // Read from its start once more (a restart under a stored 20 re-reads nothing; a seek does).
    await second.kill('SIGTERM');
    await db.pool.query('UPDATE consumer_offsets SET next_offset = 0 WHERE group_id = $1', [topics.groupId]);
    await runIngest(db, topics);
    await waitStored(db, topics, 20n, 'the new log read again');

    const { rows } = await db.pool.query<{ offset: string; value: string }>(
      "SELECT source_offset::text AS offset, convert_from(record_value, 'UTF8') AS value FROM quarantine ORDER BY source_offset, id",
    );
    const expected = bad('old').flatMap((old, i) => [{ offset: String(i), value: old.value }, { offset: String(i), value: bad('new')[i]!.value }]);
    expect(rows).toEqual(expected);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...before, ...after]));
  });

  it('are recognised as the record applied before the position after a restart, by their bytes', async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    const first = await runIngest(db, topics);
    await send(topics.events, eventsFor('v', 5));
    await sendRecords(topics.events, [{ key: 'k', value: Buffer.alloc(200 * 1024, 'x') }]); // offset 5: too large, kept whole
    await waitStored(db, topics, 6n, 'the reject to be stored');
    await first.kill('SIGTERM');

    const second = await runIngest(db, topics);
    await send(topics.events, eventsFor('v', 2, 100));
    await waitStored(db, topics, 8n, 'the next events');
    await expectNoLogReset(second);
  });

  it('do not make an event of the new log at an offset the old log quarantined look like another reset', async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    const first = await runIngest(db, topics);
    const before = eventsFor('w', 45);
    const rejects = Array.from({ length: 5 }, (_, i) => ({ key: 'k', value: `not JSON ${i}` }));
    await sendRecords(topics.events, [...rejects, ...asRecords(before)]); // offsets 0-49
    await waitCaughtUp(db.pool, topics);
    await first.kill('SIGTERM');

    await recreateTopic(topics.events);
    const after = eventsFor('w', 3, 100);
    await send(topics.events, after); // offsets 0-2: a reset, then the position 3
    const second = await runIngest(db, topics);
    await waitStored(db, topics, 3n, 'the new log to be applied');
    await second.kill('SIGTERM');

    // The restart checks offset 2: the old log's quarantine row there differs, the new log's event is stored.
    const third = await runIngest(db, topics);
    await send(topics.events, eventsFor('w', 2, 200));
    await waitStored(db, topics, 5n, 'the next events');
    await expectNoLogReset(third);
  });
});

describe('a log replaced by a longer one', () => {
  // The new log's records below the old position were skipped before: the position check
  // only caught a log that ends before the position. After a join, the record before the
  // position is fetched again and compared with what was applied there.
  async function replaced(whileRunning: boolean) {
    const db = await database();
    const topics = await createTestTopics(1);
    let ingest = await runIngest(db, topics);
    const before = eventsFor(`x${whileRunning}`, 20); // offsets 0-19
    await send(topics.events, before);
    await waitCaughtUp(db.pool, topics);
    if (!whileRunning) await ingest.kill('SIGTERM');
    await recreateTopic(topics.events);
    const after = eventsFor(`x${whileRunning}`, 60, 100); // offsets 0-59 of the new log, past the stored 20
    await send(topics.events, after);
    if (!whileRunning) {
      ingest = await runIngest(db, topics);
    }
    await waitFor('the new log to be applied', async () => (await storedOffset(db, topics)) === 60n && (await eventCount(db)) === 80, { timeoutMs: 60_000, intervalMs: 250 });
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...before, ...after]));
    expect(fs.readFileSync(ingest.logFile, 'utf8')).toMatch(/the record at \S+ offset 19 is not the one applied there \(the position is 20\): the topic was recreated or its log truncated; reading it again from offset 0/);
    expect(await metricsOf(ingest)).toMatch(/hunt_ingest_log_resets_total\{topic="[^"]+",partition="0"\} 1\b/);
  }

  it('is not mistaken for one where a partition only started (INGEST_START_FROM=latest): a restart reads nothing again', async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    await send(topics.events, eventsFor('old', 10)); // before the group: latest skips them
    const env = { INGEST_START_FROM: 'latest' };
    const first = await runIngest(db, topics, env);
    await waitStored(db, topics, 10n, 'the start position stored');
    await first.kill('SIGTERM');

    const second = await runIngest(db, topics, env);
    const fresh = eventsFor('new', 5, 100);
    await send(topics.events, fresh);
    await waitStored(db, topics, 15n, 'the new events');
    expect(await eventCount(db)).toBe(5);
    await expectNoLogReset(second);
  });

  it('is read from its start when the topic was recreated while ingest was down', () => replaced(false));
  it('is read from its start when the topic was recreated while ingest ran', () => replaced(true));
});

describe('a backlog waiting at start-up', () => {
  // The join's reload of the positions raced the first fetches: they were taken while it ran,
  // so the record it then checked was one still buffered, not yet committed, and looked
  // replaced. Each start read its partitions again from offset 0 (the benchmark's drains
  // logged it in nearly every run).
  it('is taken without a log reset, on a fresh database and when resuming', async () => {
    const db = await database();
    const topics = await createTestTopics(4);
    // Many hunts, so every partition has a backlog.
    const spread = (events: HuntEvent[]) => events.map((e, i) => ({ ...e, huntId: `hunt-${i % 100}` }));
    await send(topics.events, spread(eventsFor('backlog', 20_000)));
    const first = await runIngest(db, topics);
    await waitCaughtUp(db.pool, topics);
    await expectNoLogReset(first);
    await first.kill('SIGTERM');

    await send(topics.events, spread(eventsFor('backlog', 20_000, 20_000)));
    const second = await runIngest(db, topics);
    await waitCaughtUp(db.pool, topics);
    await expectNoLogReset(second);
    expect(await eventCount(db)).toBe(40_000);
    expect(recordsRead(await metricsOf(second))).toBe(20_000);
  });
});

describe('a member joining during a backlog', () => {
  // The member already there committed what it had buffered only after the join had loaded
  // the positions, so it read its own buffer again, and the new member read what the other
  // had buffered for its partitions; each reject among those went to the DLQ twice.
  it('reads nothing twice and copies each reject to the DLQ once', async () => {
    const db = await database();
    const topics = await createTestTopics(4);
    const events = eventsFor('join', 100_000).map((e, i) => ({ ...e, huntId: `hunt-${i % 100}` }));
    // A reject every 2,500 records, so some are buffered when the second member joins.
    const records = asRecords(events).flatMap((record, i) => (i % 2_500 === 0 ? [record, { key: record.key, value: '{"eventId": "broken' }] : [record]));
    const rejects = records.length - events.length;
    await sendRecords(topics.events, records);
    const first = await runIngest(db, topics);
    await waitFor('the first member to commit some of the backlog', async () => (await eventCount(db)) >= 10_000, { timeoutMs: 30_000, intervalMs: 50 });
    const second = await runIngest(db, topics);
    await waitCaughtUp(db.pool, topics);
    const read = recordsRead(await metricsOf(first)) + recordsRead(await metricsOf(second));
    expect(read).toBe(records.length);
    expect(await endOffsets(topics.dlq)).toBe(rejects);
    expect(await eventCount(db)).toBe(events.length);
    await expectNoLogReset(first);
    await expectNoLogReset(second);
  });
});

describe('INGEST_START_FROM=latest for a group new to the topic', () => {
  it('starts every partition at its end, not only the first one looked up', async () => {
    const db = await database();
    const topics = await createTestTopics(4);
    const spread = (events: HuntEvent[]) => events.map((e, i) => ({ ...e, huntId: `hunt-${i % 100}` }));
    await send(topics.events, spread(eventsFor('before', 400))); // before the group: skipped
    const ingest = await runIngest(db, topics, { INGEST_START_FROM: 'latest' });
    await waitFor('a start on every partition', async () => (await db.pool.query('SELECT 1 FROM consumer_offsets')).rowCount === 4, { timeoutMs: 30_000, intervalMs: 100 });
    await send(topics.events, spread(eventsFor('after', 100)));
    await waitCaughtUp(db.pool, topics);
    expect(await eventCount(db)).toBe(100);
    await expectNoLogReset(ingest);
  });
});

describe('start-up', () => {
  it('stops with a clear message and a non-zero exit when the API port is taken, consuming nothing', async () => {
    const db = await database();
    const topics = await createTestTopics(1);
    await send(topics.events, eventsFor('p', 20));
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '0.0.0.0', resolve));
    onCleanup(() => new Promise((resolve) => blocker.close(resolve)));
    const port = (blocker.address() as net.AddressInfo).port;
    const ingest = track(startIngestProcess(db.url, topics, { API_PORT: String(port) }));
    const code = await new Promise<number | null>((resolve) => ingest.child.once('exit', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(fs.readFileSync(ingest.logFile, 'utf8')).toContain(`API_PORT ${port} is already in use`);
    const { rows } = await db.pool.query('SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM consumer_offsets) AS offsets');
    expect(rows[0]).toEqual({ events: 0, offsets: 0 });
  });
});
