/**
 * The reconcile activity, retried after a crash mid-run, on the real Postgres: it resumes by
 * hunt id inside the scope its first attempt fixed, so hunts that appear meanwhile are never
 * skipped, and the watermark never passes a hunt that was not reconciled; and a retry that
 * redoes a group committed unannounced still reports the drift the first attempt found.
 * (MockActivityEnvironment runs the real activity, heartbeats and retry details included.)
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createReconcileActivities, type ReconcileActivityInput, type ReconcileCheckpoint, type ReconcileSummary } from '../../src/correctness/reconcile-job';
import type { HuntEvent } from '../../src/events/schema';
import { foldEvents } from '../../src/rules/reference';
import { useTestDatabase } from '../helpers/database-fixture';
import { applyInOneTransaction } from '../helpers/stored-events';
import { clueFound, joined } from '../helpers/event-builders';
import { projectionOf } from '../helpers/ingest';

const db = useTestDatabase();

let clock = Date.now() - 3_600_000;
function huntEvents(huntId: string): HuntEvent[] {
  return [
    joined({ eventId: `${huntId}-j`, huntId, playerId: 'ann', displayName: 'Ann', occurredAt: new Date(clock++).toISOString() }),
    clueFound({ eventId: `${huntId}-c1`, huntId, playerId: 'ann', clueId: 'c1', points: 10, occurredAt: new Date(clock++).toISOString() }),
    clueFound({ eventId: `${huntId}-c2`, huntId, playerId: 'bob', clueId: 'c1', points: 20, occurredAt: new Date(clock++).toISOString() }),
  ];
}

/** Stores events, then corrupts their hunts' live scores, so reconciliation has drift to repair. */
async function storeCorrupted(events: HuntEvent[]): Promise<void> {
  await applyInOneTransaction(db.pool, events);
  await db.pool.query('UPDATE player_scores SET score = score + 1000 WHERE hunt_id = ANY($1::text[])', [[...new Set(events.map((e) => e.huntId))]]);
}

const input = (runId: string): ReconcileActivityInput => ({ runId, repair: true, huntsPerTransaction: 1, settleMs: 0 });
const reconciledBy = async (runId: string) =>
  (await db.pool.query<{ hunt_id: string }>('SELECT hunt_id FROM reconcile_runs WHERE run_id = $1 ORDER BY hunt_id', [runId])).rows.map((r) => r.hunt_id);
const watermark = async () => Number((await db.pool.query(`SELECT last_seq FROM job_watermarks WHERE job = 'reconcile'`)).rows[0]?.last_seq ?? 0);

describe('reconcile, retried after a crash mid-run', () => {
  it('repairs every hunt of its scope, and hunts that appear meanwhile by the next run at the latest', async () => {
    const first = ['hunt-b', 'hunt-d', 'hunt-f'].flatMap(huntEvents);
    await storeCorrupted(first);
    const { reconcileHunts } = createReconcileActivities({ pool: db.pool });

    // Attempt 1 dies right after its first hunt committed (its heartbeat is the last thing it says).
    const attempt1 = new MockActivityEnvironment();
    let checkpoint: unknown;
    attempt1.on('heartbeat', (details: { lastHuntDone?: string }) => {
      if (checkpoint === undefined && details.lastHuntDone !== undefined) {
        checkpoint = details;
        throw new Error('worker killed');
      }
    });
    await expect(attempt1.run(reconcileHunts, input('run-1'))).rejects.toThrow('worker killed');
    expect(checkpoint).toMatchObject({ lastHuntDone: 'hunt-b' });
    expect(await watermark()).toBe(0);

    // Meanwhile new hunts arrive, one sorting before the hunt already done, one after.
    const meanwhile = ['hunt-a', 'hunt-z'].flatMap(huntEvents);
    await storeCorrupted(meanwhile);

    // The retry resumes from the heartbeat: same scope, after hunt-b.
    const attempt2 = new MockActivityEnvironment({ heartbeatDetails: checkpoint, attempt: 2 });
    const summary = (await attempt2.run(reconcileHunts, input('run-1'))) as ReconcileSummary;
    expect(await reconciledBy('run-1')).toEqual(['hunt-b', 'hunt-d', 'hunt-f']);
    const maxSeqOfFirst = Number((await db.pool.query(`SELECT max(seq) AS s FROM events WHERE hunt_id = ANY($1::text[])`, [['hunt-b', 'hunt-d', 'hunt-f']])).rows[0].s);
    expect(summary.watermark).toBe(maxSeqOfFirst);
    expect(await watermark()).toBe(maxSeqOfFirst);
    // No hunt with an event at or below the watermark is left unreconciled.
    const below = await db.pool.query(`SELECT DISTINCT hunt_id FROM events WHERE seq <= $1 ORDER BY hunt_id`, [await watermark()]);
    expect(below.rows.map((r) => r.hunt_id)).toEqual(['hunt-b', 'hunt-d', 'hunt-f']);

    // The next scheduled run picks up the hunts that arrived during the retried one.
    await new MockActivityEnvironment().run(reconcileHunts, input('run-2'));
    expect(await reconciledBy('run-2')).toEqual(['hunt-a', 'hunt-z']);
    expect(await projectionOf(db.pool)).toEqual(foldEvents([...first, ...meanwhile]));
  });

  it('records drift once per run, however often the same hunts are checked again', async () => {
    const events = huntEvents('hunt-q');
    await storeCorrupted(events);
    const { reconcileHunts } = createReconcileActivities({ pool: db.pool });
    const check = { ...input('dq-run/score-drift'), huntIds: ['hunt-q'], repair: false };
    await new MockActivityEnvironment().run(reconcileHunts, check);
    await new MockActivityEnvironment().run(reconcileHunts, check);
    const { rows } = await db.pool.query(`SELECT subject_id FROM reconcile_drift WHERE run_id = $1 ORDER BY subject_id`, ['dq-run/score-drift']);
    expect(rows.map((r) => r.subject_id)).toEqual(['ann', 'bob']);
  });

  it('leaves the watermark to repairing runs: the drift a run that only checks found is repaired by the next', async () => {
    const events = huntEvents('hunt-w');
    await storeCorrupted(events);
    const { reconcileHunts } = createReconcileActivities({ pool: db.pool });
    const before = await watermark();

    // A check-only run over the events since the watermark (`hunt reconcile --no-repair`).
    const checked = (await new MockActivityEnvironment().run(reconcileHunts, { ...input('run-only-checking'), repair: false })) as ReconcileSummary;
    expect(checked.drifted.map((d) => d.huntId)).toContain('hunt-w');
    expect(checked.watermark).toBeUndefined();
    expect(await watermark()).toBe(before);

    // The next scheduled run starts from the same watermark, so it repairs what was found.
    const repaired = (await new MockActivityEnvironment().run(reconcileHunts, input('run-after-check'))) as ReconcileSummary;
    expect(await reconciledBy('run-after-check')).toContain('hunt-w');
    expect(repaired.watermark).toBe(await watermark());
    expect(await watermark()).toBeGreaterThan(before);
    const live = await projectionOf(db.pool);
    expect(live.players.filter((p) => p.huntId === 'hunt-w')).toEqual(foldEvents(events).players);
  });
});

describe('reconcile, retried after a group committed unannounced', () => {
  const recorded = async (runId: string) =>
    (await db.pool.query('SELECT hunt_id, players_drifted FROM reconcile_runs WHERE run_id = $1 ORDER BY hunt_id', [runId])).rows;

  for (const repair of [true, false]) {
    it(`keeps the drift the first attempt found (repair: ${repair})`, async () => {
      const runId = `run-${repair ? 'repair' : 'check'}`;
      const hunts = repair ? ['hunt-r1', 'hunt-r2'] : ['hunt-c1', 'hunt-c2'];
      await storeCorrupted(hunts.flatMap(huntEvents)); // two drifted players per hunt
      const { reconcileHunts } = createReconcileActivities({ pool: db.pool });
      const args = { ...input(runId), huntIds: hunts, repair };

      // Attempt 1 dies as it heartbeats its first group's commit: the last heartbeat the
      // server holds is the one from before that group (details serialized when sent).
      const attempt1 = new MockActivityEnvironment();
      let lastDelivered: ReconcileCheckpoint | undefined;
      attempt1.on('heartbeat', (details: ReconcileCheckpoint) => {
        if (details.lastHuntDone !== undefined) throw new Error('worker killed');
        lastDelivered = structuredClone(details);
      });
      await expect(attempt1.run(reconcileHunts, args)).rejects.toThrow('worker killed');
      expect(lastDelivered?.lastHuntDone).toBeUndefined();
      expect(await recorded(runId)).toEqual([{ hunt_id: hunts[0], players_drifted: 2 }]);

      const attempt2 = new MockActivityEnvironment({ heartbeatDetails: lastDelivered, attempt: 2 });
      const summary = (await attempt2.run(reconcileHunts, args)) as ReconcileSummary;
      expect(summary.playersDrifted).toBe(4);
      expect(summary.drifted.map((d) => [d.huntId, d.playersDrifted])).toEqual(hunts.map((h) => [h, 2]));
      expect(await recorded(runId)).toEqual(hunts.map((h) => ({ hunt_id: h, players_drifted: 2 })));
    });
  }
});

describe('reconcile, retried from a heartbeat the SDK serialized late', () => {
  // The SDK serializes a heartbeat's details when it sends them, after the throttle: what
  // the server holds is the object handed over, as it is by then, not as it was.
  it('counts each hunt once, and reports what reconcile_runs recorded', async () => {
    const hunts = ['hunt-s1', 'hunt-s2', 'hunt-s3'];
    await storeCorrupted(hunts.flatMap(huntEvents)); // two drifted players per hunt
    const { reconcileHunts } = createReconcileActivities({ pool: db.pool });
    const args = { ...input('run-late-beat'), huntIds: hunts };

    // Attempt 1 hands over the checkpoint after hunt-s1; it is still unsent when the worker
    // dies at the checkpoint after hunt-s2.
    const attempt1 = new MockActivityEnvironment();
    let handedOver: ReconcileCheckpoint | undefined;
    attempt1.on('heartbeat', (details: ReconcileCheckpoint) => {
      if (details.lastHuntDone === 'hunt-s1') handedOver = details;
      if (details.lastHuntDone === 'hunt-s2') throw new Error('worker killed');
    });
    await expect(attempt1.run(reconcileHunts, args)).rejects.toThrow('worker killed');
    const sent = structuredClone(handedOver);
    expect(sent).toMatchObject({ lastHuntDone: 'hunt-s1' });

    const attempt2 = new MockActivityEnvironment({ heartbeatDetails: sent, attempt: 2 });
    const summary = (await attempt2.run(reconcileHunts, args)) as ReconcileSummary;
    const recorded = (await db.pool.query('SELECT sum(players_checked)::int AS checked, sum(players_drifted)::int AS drifted FROM reconcile_runs WHERE run_id = $1', ['run-late-beat'])).rows[0];
    expect(recorded).toEqual({ checked: 6, drifted: 6 });
    expect({ checked: summary.playersChecked, drifted: summary.playersDrifted }).toEqual(recorded);
    expect(summary.drifted.map((d) => [d.huntId, d.playersDrifted])).toEqual(hunts.map((h) => [h, 2]));
  });
});

describe('a long reconcile run', () => {
  // The watermark's age feeds HuntScheduledJobBehind: a run that commits group after group
  // is making progress, and only a run that stops doing so may look hung.
  it('confirms its progress after each group without moving the watermark', async () => {
    await storeCorrupted(['hunt-m', 'hunt-n'].flatMap(huntEvents));
    await db.pool.query(
      `INSERT INTO job_watermarks (job, updated_at) VALUES ('reconcile', now() - interval '20 minutes')
       ON CONFLICT (job) DO UPDATE SET updated_at = excluded.updated_at`,
    );
    const age = async () => Number((await db.pool.query(`SELECT extract(epoch FROM now() - updated_at) AS age FROM job_watermarks WHERE job = 'reconcile'`)).rows[0].age);
    const before = await watermark();
    expect(await age()).toBeGreaterThan(1000);

    const { reconcileHunts } = createReconcileActivities({ pool: db.pool });
    const attempt = new MockActivityEnvironment();
    attempt.on('heartbeat', (details: { lastHuntDone?: string }) => {
      if (details.lastHuntDone !== undefined) throw new Error('stopped after the first group');
    });
    await expect(attempt.run(reconcileHunts, input('run-long'))).rejects.toThrow('stopped after the first group');
    expect(await reconciledBy('run-long')).toHaveLength(1);
    expect(await age()).toBeLessThan(60);
    expect(await watermark()).toBe(before);
  });
});
