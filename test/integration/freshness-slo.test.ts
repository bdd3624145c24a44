/**
 * The freshness SLO end to end: `hunt ingest` counts what it commits into freshness_minutes,
 * and `hunt slo` reports known counts with the right windows and arithmetic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addFreshnessCounts, readFreshnessWindows } from '../../src/store/hot-path/freshness-minutes';
import { migrate } from '../../src/store/migrate';
import { useTestDatabase } from '../helpers/database-fixture';
import { runHunt, type HuntRun } from '../helpers/hunt-command';
import { createTestTopics, sendRecords, startIngestProcess, waitCaughtUp, type IngestProcess } from '../helpers/ingest';
import { inOrderTraffic } from '../helpers/traffic';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;

const db = useTestDatabase();
beforeAll(async () => {
  // Another checkout's test run may have rebuilt the shared template without this branch's
  // migrations; bring this database up to date whatever it was cloned from.
  const client = await db.pool.connect();
  try {
    await migrate(client);
  } finally {
    client.release();
  }
});

const huntSlo = (...args: string[]): Promise<HuntRun> =>
  runHunt(['slo', ...args], { DATABASE_URL: db.url, SLO_FRESHNESS_TARGET_MS: '50', SLO_OBJECTIVE: '0.999' });

/** What `hunt slo` printed on stdout, once it exited with 0. */
async function sloReport(...args: string[]): Promise<string> {
  const run = await huntSlo(...args);
  expect(run.code, run.output).toBe(0);
  return run.stdout;
}

describe('hunt slo', () => {
  it('reports the share within the target over the last hour and day, against the objective', async () => {
    await db.pool.query('TRUNCATE freshness_minutes');
    const thisMinute = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
    // Away from the windows' edges, so a minute turning while the command starts changes nothing.
    await addFreshnessCounts(db.pool, 50, [
      { minuteMs: thisMinute, events: 1000, withinTarget: 999 },
      { minuteMs: thisMinute - 30 * MINUTE_MS, events: 2000, withinTarget: 1999 },
      { minuteMs: thisMinute - 2 * HOUR_MS, events: 10_000, withinTarget: 9_000 },
      { minuteMs: thisMinute - 23 * HOUR_MS, events: 7000, withinTarget: 7000 },
      { minuteMs: thisMinute - 26 * HOUR_MS, events: 5000, withinTarget: 0 },
    ]);
    // Two ingest processes adding to the same minute.
    await addFreshnessCounts(db.pool, 50, [{ minuteMs: thisMinute - 30 * MINUTE_MS, events: 1000, withinTarget: 1000 }]);
    // A process counting against another target: reported as a note, never mixed in.
    await addFreshnessCounts(db.pool, 100, [{ minuteMs: thisMinute - 30 * MINUTE_MS, events: 77, withinTarget: 77 }]);

    const json = JSON.parse(await sloReport('--json')) as {
      targetMs: number;
      objective: number;
      windows: { window: string; events: number; withinTarget: number; late: number; share: number; budgetUsed: number; met: boolean }[];
      otherTargets: number[];
    };
    expect(json).toMatchObject({ targetMs: 50, objective: 0.999, otherTargets: [100] });
    // Hour: 4,000 events, 2 late, 4 allowed: half the budget, met.
    const [hour, day] = json.windows;
    expect(hour).toMatchObject({ window: '1h', events: 4000, withinTarget: 3998, late: 2, met: true });
    expect(hour?.share).toBeCloseTo(0.9995, 12);
    expect(hour?.budgetUsed).toBeCloseTo(0.5, 9);
    // Day: 21,000 events, 1,002 late, 21 allowed: the budget spent 47.7 times over.
    expect(day).toMatchObject({ window: '1d', events: 21_000, withinTarget: 19_998, late: 1002, met: false });
    expect(day?.budgetUsed).toBeCloseTo(1002 / 21, 6);

    const text = await sloReport();
    expect(text).toMatch(/^last hour +4,000 +3,998 +2 +99\.95% +50% +met$/m);
    expect(text).toMatch(/^last day +21,000 +19,998 +1,002 +95\.229% +4771% +MISSED$/m);
    expect(text).toMatch(/also counted against 100 ms/);
  });

  it('counts minutes that started within the window, the current one included: the last hour is 60 rows', async () => {
    await db.pool.query('TRUNCATE freshness_minutes');
    const now = Date.UTC(2026, 11, 2, 10, 30, 20);
    const thisMinute = Date.UTC(2026, 11, 2, 10, 30);
    await addFreshnessCounts(db.pool, 50, [
      { minuteMs: thisMinute, events: 1, withinTarget: 1 },
      { minuteMs: thisMinute - 59 * MINUTE_MS, events: 10, withinTarget: 10 },
      { minuteMs: thisMinute - 60 * MINUTE_MS, events: 100, withinTarget: 100 },
      { minuteMs: thisMinute + MINUTE_MS, events: 1000, withinTarget: 1000 },
    ]);
    const [hour] = await readFreshnessWindows(db.pool, 50, [HOUR_MS], now);
    expect(hour).toEqual({ spanMs: HOUR_MS, events: 11, withinTarget: 11 });
  });

  it('names the fix when the database was never migrated for it', async () => {
    await db.pool.query('ALTER TABLE freshness_minutes RENAME TO freshness_minutes_away');
    try {
      const run = await huntSlo();
      expect(run.code).toBe(1);
      expect(run.output).toMatch(/no freshness_minutes table yet: run `hunt migrate`/);
    } finally {
      await db.pool.query('ALTER TABLE freshness_minutes_away RENAME TO freshness_minutes');
    }
  });
});

describe('hunt ingest', () => {
  let ingest: IngestProcess | undefined;
  afterAll(async () => {
    await ingest?.kill('SIGKILL');
  });

  it('counts every valid record it commits, late by its Kafka timestamp, leaves out timestamps a wrong clock set, and stores the counts by the time it stops', async () => {
    await db.pool.query('TRUNCATE freshness_minutes');
    const topics = await createTestTopics(2);
    const traffic = inOrderTraffic(3000, 11);
    // The widest target there is: a record produced now is within it however slow this
    // machine is; one stamped ten minutes ago is late whatever the machine.
    const targetMs = 60_000;
    const stale = traffic.records.slice(0, 1000);
    const ahead = traffic.records.slice(1000, 1200); // a producer clock an hour fast: not fresh, not counted
    const fresh = traffic.records.slice(1200);
    const valid = (records: typeof traffic.records) => records.filter((r) => r.kind !== 'invalid').length;
    ingest = startIngestProcess(db.url, topics, { SLO_FRESHNESS_TARGET_MS: String(targetMs) });
    await ingest.ready();
    const staleAt = String(Date.now() - 10 * MINUTE_MS);
    await sendRecords(topics.events, stale.map((r) => ({ key: r.key, value: r.value, timestamp: staleAt })));
    await sendRecords(topics.events, ahead.map((r) => ({ key: r.key, value: r.value, timestamp: String(Date.now() + 60 * MINUTE_MS) })));
    await sendRecords(topics.events, fresh.map((r) => ({ key: r.key, value: r.value })));
    await waitCaughtUp(db.pool, topics);
    const metrics = await (await fetch(`${ingest.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`hunt_ingest_implausible_timestamps_total ${valid(ahead)}\\b`));
    expect(await ingest.kill('SIGTERM')).toBe(0);

    const { rows } = await db.pool.query<{ target_ms: number; events: string; within_target: string }>(
      'SELECT target_ms, sum(events) AS events, sum(within_target) AS within_target FROM freshness_minutes GROUP BY target_ms',
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]?.target_ms).toBe(targetMs);
    // Valid records, duplicates included (as in hunt_ingest_freshness_seconds); rejects are not events.
    expect(Number(rows[0]?.events)).toBe(valid(stale) + valid(fresh));
    expect(Number(rows[0]?.within_target)).toBe(valid(fresh));
  });
});
