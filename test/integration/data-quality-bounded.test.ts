/**
 * dataQuality on a large store, scaled down: a retried attempt resumes after the checks (and
 * the pages of a hunt-by-hunt check) its predecessor finished, the duplicate check's samples
 * come from bounded sub-queries, and the hunt-by-hunt checks page through hunts by key
 * (a page size of 2 here, so a few hunts make several pages).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createDataQualityActivities, type DataQualityHeartbeat } from '../../src/correctness/data-quality-job';
import type { HuntEvent } from '../../src/events/schema';
import { parseOccurredAt } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { CHECKS, runDataQuality, type CheckProgress, type CheckReport, type DataQualityCheckpoint } from '../../src/store/correctness/data-quality';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { atSecond, clueFound, joined, treasureClaimed } from '../helpers/event-builders';
import { projectionOf } from '../helpers/ingest';

const byName = (checks: CheckReport[]) => Object.fromEntries(checks.map((c) => [c.check, c]));

describe('dataQuality, retried after a finished check', () => {
  const db = useTestDatabase();
  const store = (events: HuntEvent[]) =>
    withTransaction(db.pool, (c) => applyEvents(c, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }))));

  it('resumes after the last finished check and does not run it again', async () => {
    await store([clueFound({ eventId: 'r-1', huntId: 'rh', occurredAt: atSecond(1) }), clueFound({ eventId: 'r-2', huntId: 'rh', occurredAt: atSecond(2) })]);
    const { runDataQualityChecks } = createDataQualityActivities({ pool: db.pool });
    const input = { runId: 'dq-resume', repair: false };

    // Attempt 1 dies as it announces its first finished check.
    const attempt1 = new MockActivityEnvironment();
    let checkpoint: DataQualityCheckpoint | undefined;
    attempt1.on('heartbeat', (details: DataQualityCheckpoint | undefined) => {
      if (checkpoint === undefined && details?.finished?.length === 1) {
        checkpoint = structuredClone(details);
        throw new Error('worker killed');
      }
    });
    await expect(attempt1.run(runDataQualityChecks, input)).rejects.toThrow('worker killed');
    expect(checkpoint?.finished.map((r) => r.check)).toEqual(['duplicate_semantic_events']);
    const storedFirst = await db.pool.query(`SELECT finding_count, checked_at FROM dq_reports WHERE run_id = $1`, [input.runId]);
    expect(storedFirst.rows).toHaveLength(1);

    // More duplicates arrive: a check run again would now count two groups.
    await store([clueFound({ eventId: 'r-3', huntId: 'rh2', occurredAt: atSecond(1) }), clueFound({ eventId: 'r-4', huntId: 'rh2', occurredAt: atSecond(2) })]);

    const attempt2 = new MockActivityEnvironment({ heartbeatDetails: checkpoint, attempt: 2 });
    const beats: DataQualityHeartbeat[] = [];
    attempt2.on('heartbeat', (details: DataQualityHeartbeat) => beats.push(structuredClone(details)));
    const reports = (await attempt2.run(runDataQualityChecks, input)) as CheckReport[];
    expect(reports.map((r) => r.check)).toEqual(CHECKS.map((c) => c.name));
    expect(reports[0]).toEqual(checkpoint?.finished[0]);
    expect(reports[0]?.count).toBe(1);
    expect(beats.some((b) => b.progress?.check === 'duplicate_semantic_events')).toBe(false);
    expect(beats.some((b) => b.progress?.check === 'score_drift')).toBe(true);
    const stored = await db.pool.query(`SELECT check_name, finding_count, checked_at FROM dq_reports WHERE run_id = $1 ORDER BY check_name`, [input.runId]);
    expect(stored.rows).toHaveLength(CHECKS.length);
    expect(stored.rows.find((r) => r.check_name === 'duplicate_semantic_events')).toEqual({ check_name: 'duplicate_semantic_events', ...storedFirst.rows[0] });
  });
});

describe('dataQuality, bounded', () => {
  const db = useTestDatabase();

  it('runs its statements under the bounds given, and stops on the signal, naming the check', async () => {
    // A statement held up (here by a lock on the events table) ends at the statement timeout.
    await withTransaction(db.pool, async (holder) => {
      await holder.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      const timedOut = runDataQuality(db.pool, 'dq-timeout', false, undefined, { bounds: { statementTimeoutMs: 300, lockTimeoutMs: 60_000 } });
      await expect(timedOut).rejects.toThrow(/check duplicate_semantic_events: .*statement timeout/);
    });
    const aborted = runDataQuality(db.pool, 'dq-aborted', false, undefined, { bounds: { statementTimeoutMs: 60_000, lockTimeoutMs: 1000, signal: AbortSignal.abort() } });
    await expect(aborted).rejects.toThrow(/check duplicate_semantic_events/);
    expect((await db.pool.query(`SELECT 1 FROM dq_reports WHERE run_id IN ('dq-timeout', 'dq-aborted')`)).rows).toEqual([]);
  });
});

describe('duplicate_semantic_events', () => {
  const db = useTestDatabase();
  const store = (events: HuntEvent[]) =>
    withTransaction(db.pool, (c) => applyEvents(c, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }))));

  it('counts every group and samples its first three eventIds, by time then eventId', async () => {
    // One client resending the same clue under new eventIds, two of them at the same instant.
    const resent = [5, 3, 9, 3, 7, 8].map((s, i) => clueFound({ eventId: `dup-${'fedcba'[i]}`, huntId: 'dh', playerId: 'ann', clueId: 'c1', occurredAt: atSecond(s) }));
    const claims = [2, 1].map((s, i) => treasureClaimed({ eventId: `claim-${i}`, huntId: 'dh', playerId: 'bob', treasureId: 't9', occurredAt: atSecond(s) }));
    const single = clueFound({ eventId: 'once', huntId: 'dh', playerId: 'bob', clueId: 'c1', occurredAt: atSecond(4) });
    await store([...resent, ...claims, single]);

    const report = byName(await runDataQuality(db.pool, 'dq-dups', false)).duplicate_semantic_events;
    expect(report?.count).toBe(2);
    expect(report?.samples).toHaveLength(2);
    expect(report?.samples).toEqual(
      expect.arrayContaining([
        { hunt_id: 'dh', player_id: 'ann', type: 'clue.found', subject: 'c1', events: 6, event_ids: ['dup-c', 'dup-e', 'dup-f'] },
        { hunt_id: 'dh', player_id: 'bob', type: 'treasure.claimed', subject: 't9', events: 2, event_ids: ['claim-1', 'claim-0'] },
      ]),
    );
    expect(Object.keys((report?.samples[0] ?? {}) as object)).toEqual(['hunt_id', 'player_id', 'type', 'subject', 'events', 'event_ids']);
  });
});

describe('score_drift and orphan_projection_rows, paged by hunt', () => {
  const db = useTestDatabase();
  const store = (events: HuntEvent[]) =>
    withTransaction(db.pool, (c) => applyEvents(c, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }))));
  const HUNTS = Array.from({ length: 7 }, (_, i) => `ph-${i}`);
  const events = HUNTS.flatMap((huntId, i) => [
    joined({ eventId: `${huntId}-j`, huntId, playerId: 'p1', displayName: 'P', occurredAt: atSecond(i) }),
    clueFound({ eventId: `${huntId}-c`, huntId, playerId: 'p1', clueId: 'c1', points: 10, occurredAt: atSecond(i + 1) }),
  ]);
  /** Every hunt: p1's score off and a ghost player; and a hunt with nothing but an orphan winner. */
  const corrupt = async () => {
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE hunt_id LIKE 'ph-%'`);
    await db.pool.query(`INSERT INTO player_scores (hunt_id, player_id, score) SELECT h, 'ghost', 5 FROM unnest($1::text[]) h`, [HUNTS]);
    await db.pool.query(`INSERT INTO treasure_winners (hunt_id, treasure_id, player_id, event_id, occurred_at, points) VALUES ('ph-zz', 't1', 'nobody', 'gone', now(), 1)`);
  };
  const huntsDone = (seen: CheckProgress[], check: string) => seen.filter((p) => p.check === check && p.huntsDone !== undefined).map((p) => p.huntsDone);

  it('finds and repairs the same as one page would, keeping a few samples', async () => {
    await store(events);
    await corrupt();
    const seen: CheckProgress[] = [];
    const paged = byName(await runDataQuality(db.pool, 'dq-paged', false, (p) => seen.push(p), { huntsPerPage: 2 }));
    expect(huntsDone(seen, 'orphan_projection_rows')).toEqual([2, 4, 6, 8]);
    expect(huntsDone(seen, 'score_drift')).toEqual([2, 4, 6, 7]);
    expect(seen.filter((p) => p.check === 'score_drift' && p.huntsDone !== undefined).every((p) => p.of === 7)).toBe(true);
    expect(paged.orphan_projection_rows).toMatchObject({ count: 8 });
    expect(paged.orphan_projection_rows?.samples).toHaveLength(5);
    expect(paged.orphan_projection_rows?.samples[0]).toEqual({ table_name: 'player_scores', hunt_id: 'ph-0', id: 'ghost' });
    expect(paged.score_drift).toMatchObject({ count: 14 });
    expect(paged.score_drift?.samples).toHaveLength(5);

    const whole = byName(await runDataQuality(db.pool, 'dq-whole', false));
    expect(whole.orphan_projection_rows?.count).toBe(8);
    expect(whole.score_drift?.count).toBe(14);

    const repaired = byName(await runDataQuality(db.pool, 'dq-paged-repair', true, undefined, { huntsPerPage: 2 }));
    expect(repaired.orphan_projection_rows?.repaired).toEqual({ huntsReconciled: 8, playersRepaired: 14, treasuresRepaired: 1, creditsRepaired: 0 });
    expect(repaired.score_drift).toMatchObject({ count: 0 });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));

    // Drift alone, in hunts of different pages: repaired hunt by hunt as found.
    await db.pool.query(`UPDATE player_scores SET score = score + 1 WHERE hunt_id IN ('ph-0', 'ph-3', 'ph-6')`);
    const drift = byName(await runDataQuality(db.pool, 'dq-paged-drift', true, undefined, { huntsPerPage: 2 }));
    expect(drift.score_drift).toMatchObject({ count: 3, repaired: { huntsReconciled: 3, playersRepaired: 3, treasuresRepaired: 0, creditsRepaired: 0 } });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(events));
  });

  it('resumes a hunt-by-hunt check after its last finished page, with what the pages before found', async () => {
    await db.pool.query(`DELETE FROM treasure_winners WHERE hunt_id = 'ph-zz'`);
    await db.pool.query(`DELETE FROM player_scores WHERE player_id = 'ghost'`);
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE hunt_id LIKE 'ph-%'`);
    const runId = 'dq-paged-resume';
    let checkpoint: DataQualityCheckpoint | undefined;
    const dying = runDataQuality(db.pool, runId, false, undefined, {
      huntsPerPage: 2,
      checkpoint: (c) => {
        if (c.partial?.check === 'score_drift' && c.partial.huntsDone === 4) {
          checkpoint = structuredClone(c);
          throw new Error('worker killed');
        }
      },
    });
    await expect(dying).rejects.toThrow('worker killed');
    expect(checkpoint?.partial).toMatchObject({ check: 'score_drift', afterHunt: 'ph-3', count: 4 });
    const before = await db.pool.query(`SELECT hunt_id, reconciled_at FROM reconcile_runs WHERE run_id = $1 ORDER BY hunt_id`, [`${runId}/score-drift`]);
    expect(before.rows.map((r) => r.hunt_id)).toEqual(['ph-0', 'ph-1', 'ph-2', 'ph-3']);

    const seen: CheckProgress[] = [];
    const reports = byName(await runDataQuality(db.pool, runId, false, (p) => seen.push(p), { huntsPerPage: 2, resumeFrom: checkpoint }));
    expect(reports.score_drift?.count).toBe(7);
    expect(huntsDone(seen, 'score_drift')).toEqual([6, 7]);
    const after = await db.pool.query(`SELECT hunt_id, reconciled_at FROM reconcile_runs WHERE run_id = $1 ORDER BY hunt_id`, [`${runId}/score-drift`]);
    expect(after.rows.slice(0, 4)).toEqual(before.rows); // the first pages were not reconciled again
    expect(after.rows.map((r) => r.hunt_id)).toEqual(HUNTS);
  });
});
