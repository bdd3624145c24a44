/**
 * dataQuality on the real services: deliberately corrupted projection and rollup rows are
 * found (count, samples, stored report) and repaired with `repair: true`.
 */
import { describe, expect, it } from 'vitest';
import type { HuntEvent } from '../../src/events/schema';
import { parseOccurredAt } from '../../src/events/schema';
import { HUNTS_PER_TRANSACTION } from '../../src/constants';
import { FUTURE_TOLERANCE_MS } from '../../src/events/validate';
import { foldEvents } from '../../src/rules/reference';
import { runDataQuality, type CheckProgress, type CheckReport } from '../../src/store/correctness/data-quality';
import { applyEvents } from '../../src/store/hot-path/apply-events';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { projectionOf } from '../helpers/ingest';
import { inOrderTraffic } from '../helpers/traffic';
import { uniqueName } from '../helpers/wait';
import { useInProcessWorker } from '../helpers/worker-fixture';

const db = useTestDatabase();
const batch = useInProcessWorker(db, 'dq');

const run = (workflowType: string, input: object) =>
  batch.client.workflow.execute(workflowType, { taskQueue: batch.taskQueue, workflowId: uniqueName(workflowType), args: [input] });

const store = (events: HuntEvent[]) =>
  withTransaction(db.pool, (c) => applyEvents(c, events.map((event) => ({ event, instant: parseOccurredAt(event.occurredAt)!, source: 'test' }))));

const byName = (checks: CheckReport[]) => Object.fromEntries(checks.map((c) => [c.check, c]));

describe('dataQuality', () => {
  it('finds deliberately corrupted rows and repairs them', async () => {
    const traffic = inOrderTraffic(3000, 31);
    await store(traffic.events);
    await run('rollupFlush', { settleMs: 0 });
    const healthy = byName((await run('dataQuality', {})).checks);
    for (const check of ['orphan_projection_rows', 'score_drift', 'rollup_mismatch']) expect(healthy[check]?.count).toBe(0);
    expect(healthy.duplicate_semantic_events?.count).toBeGreaterThan(0); // the traffic finds clues twice

    // Corrupt: a score, an orphan player, a lost treasure winner, a rollup window.
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE (hunt_id, player_id) IN (SELECT hunt_id, player_id FROM player_scores LIMIT 2)`);
    await db.pool.query(`INSERT INTO player_scores (hunt_id, player_id, score) VALUES ('hunt-0', 'ghost', 77)`);
    await db.pool.query(`DELETE FROM treasure_winners WHERE (hunt_id, treasure_id) IN (SELECT hunt_id, treasure_id FROM treasure_winners LIMIT 1)`);
    await db.pool.query(`UPDATE rollup_minute SET events = events + 5 WHERE (hunt_id, window_start) IN (SELECT hunt_id, window_start FROM rollup_minute ORDER BY 1, 2 LIMIT 1)`);
    // A column the check once ignored, in an hour window.
    await db.pool.query(`UPDATE rollup_hour SET hint_penalties = hint_penalties + 3 WHERE (hunt_id, window_start) IN (SELECT hunt_id, window_start FROM rollup_hour ORDER BY 1, 2 DESC LIMIT 1)`);

    const found = await run('dataQuality', {});
    const report = byName(found.checks);
    expect(report.orphan_projection_rows).toMatchObject({ severity: 'error', count: 1, samples: [expect.objectContaining({ id: 'ghost' })] });
    expect(report.score_drift?.count).toBeGreaterThanOrEqual(3);
    expect(report.score_drift?.repaired).toBeUndefined();
    expect(report.rollup_mismatch).toMatchObject({ count: 2 });
    expect(report.rollup_mismatch?.samples).toEqual(
      expect.arrayContaining([expect.objectContaining({ unit: 'minute', problem: 'differs' }), expect.objectContaining({ unit: 'hour', problem: 'differs' })]),
    );
    const stored = await db.pool.query(`SELECT check_name, finding_count FROM dq_reports WHERE run_id = $1 ORDER BY check_name`, [found.runId]);
    expect(stored.rows).toContainEqual({ check_name: 'rollup_mismatch', finding_count: 2 });
    expect(await projectionOf(db.pool)).not.toEqual(foldEvents(traffic.events));

    const repaired = byName((await run('dataQuality', { repair: true })).checks);
    expect(repaired.orphan_projection_rows?.repaired).toMatchObject({ huntsReconciled: 1 });
    expect(repaired.rollup_mismatch?.repaired).toEqual({ windowsReaggregated: 2 });
    expect(await projectionOf(db.pool)).toEqual(foldEvents(traffic.events));

    const after = byName((await run('dataQuality', {})).checks);
    for (const check of ['orphan_projection_rows', 'score_drift', 'rollup_mismatch']) expect(after[check]?.count).toBe(0);
  });

  it('reports progress through the hunt-by-hunt check, and stops where its progress callback throws (a cancelled attempt)', async () => {
    // Enough hunts for two full groups and part of a third.
    const events = 2 * HUNTS_PER_TRANSACTION + 5;
    await store(Array.from({ length: events }, (_, i) => clueFound({ eventId: `dq-progress-${i}`, huntId: `dq-hunt-${String(i).padStart(4, '0')}`, playerId: 'p1', points: 1, occurredAt: '2026-11-20T10:00:00Z' })));
    const hunts = Number((await db.pool.query('SELECT count(*)::int AS n FROM hunts')).rows[0].n);

    const seen: CheckProgress[] = [];
    await runDataQuality(db.pool, uniqueName('dq-progress'), false, (p) => seen.push(p));
    const drift = seen.filter((p) => p.check === 'score_drift' && p.huntsDone !== undefined);
    const group = HUNTS_PER_TRANSACTION;
    expect(drift.map((p) => p.huntsDone)).toEqual([...Array.from({ length: Math.floor(hunts / group) }, (_, k) => (k + 1) * group), ...(hunts % group ? [hunts] : [])]);
    expect(drift.every((p) => p.of === hunts)).toBe(true);

    const runId = uniqueName('dq-cancelled');
    const cancelled = runDataQuality(db.pool, runId, false, (p) => {
      if (p.check === 'score_drift' && p.huntsDone !== undefined) throw new Error('cancelled');
    });
    await expect(cancelled).rejects.toThrow('cancelled');
    const stored = await db.pool.query('SELECT check_name FROM dq_reports WHERE run_id = $1', [runId]);
    expect(stored.rows.map((r) => r.check_name)).not.toContain('score_drift'); // it stopped inside it
  });

  it('counts an event as from the future past what validation lets in, and not one a consumer a little ahead of Postgres let in', async () => {
    const inFuture = (ms: number, eventId: string) => clueFound({ eventId, huntId: 'future-hunt', clueId: eventId, occurredAt: new Date(Date.now() + ms).toISOString() });
    // Accepted by a consumer whose clock is 30 s ahead of Postgres's: at its edge, no finding.
    await store([inFuture(FUTURE_TOLERANCE_MS + 30_000, 'skewed'), inFuture(FUTURE_TOLERANCE_MS + 10 * 60_000, 'far-future')]);
    const report = byName((await run('dataQuality', {})).checks);
    const found = (report.future_events?.samples ?? []).map((s) => (s as { event_id: string }).event_id);
    expect(found).toContain('far-future');
    expect(found).not.toContain('skewed');
  });
});
