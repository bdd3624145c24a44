/**
 * The probes of the time-to-repair measurement: corrupt a live player row the way a bug
 * would (under the hunt's fence, like any writer), find the player rows that differ from a
 * recomputation from raw events (nothing written), and describe a scheduled run.
 */
import type { Client, ScheduleExecutionResult } from '@temporalio/client';
import type pg from 'pg';
import type { ReconcileSummary } from '../../src/correctness/reconcile-job';
import { recomputeInto } from '../../src/store/batch/recompute';
import { round } from './procfs';

export interface ScheduledRun {
  scheduledAt: string;
  takenAt: string;
  workflowId: string;
  status?: string;
  /** Workflow start → close, as the server recorded them. */
  durationSeconds?: number;
  startDelaySeconds?: number;
  hunts?: number;
  playersDrifted?: number;
}

/** A bug's worth of corruption, taken under the hunt's fence like any writer of its rows. */
export async function corrupt(pool: pg.Pool, huntId: string, playerId: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT 1 FROM hunts WHERE hunt_id = $1 FOR UPDATE', [huntId]);
    await client.query('UPDATE player_scores SET score = score + 1000 WHERE hunt_id = $1 AND player_id = $2', [huntId, playerId]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Players whose live row differs from the recomputation from raw events, in one snapshot (nothing written). */
export async function driftedPlayers(pool: pg.Pool, huntId: string): Promise<Set<string>> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    for (const [temp, live] of [['ttr_players', 'player_scores'], ['ttr_credits', 'clue_credits'], ['ttr_winners', 'treasure_winners']]) {
      await client.query(`CREATE TEMP TABLE ${temp} (LIKE ${live} INCLUDING ALL) ON COMMIT DROP`);
    }
    await recomputeInto(client, { players: 'ttr_players', clueCredits: 'ttr_credits', treasureWinners: 'ttr_winners' }, { huntIds: [huntId] });
    const columns = 'player_id, score, clues_found, treasures_claimed';
    const { rows } = await client.query<{ player_id: string }>(
      `(SELECT ${columns} FROM player_scores WHERE hunt_id = $1 EXCEPT SELECT ${columns} FROM ttr_players)
       UNION (SELECT ${columns} FROM ttr_players EXCEPT SELECT ${columns} FROM player_scores WHERE hunt_id = $1)`,
      [huntId],
    );
    return new Set(rows.map((r) => r.player_id));
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

export async function describeRun(client: Client, action: ScheduleExecutionResult): Promise<ScheduledRun> {
  const run: ScheduledRun = {
    scheduledAt: action.scheduledAt.toISOString(),
    takenAt: action.takenAt.toISOString(),
    workflowId: action.action.workflow.workflowId,
  };
  try {
    const handle = client.workflow.getHandle(action.action.workflow.workflowId, action.action.workflow.firstExecutionRunId);
    const d = await handle.describe();
    run.status = d.status.name;
    run.startDelaySeconds = round((d.startTime.getTime() - action.scheduledAt.getTime()) / 1000, 2);
    if (d.closeTime) run.durationSeconds = round((d.closeTime.getTime() - d.startTime.getTime()) / 1000, 2);
    if (d.status.name === 'COMPLETED') {
      const summary = (await handle.result()) as ReconcileSummary;
      run.hunts = summary.hunts;
      run.playersDrifted = summary.playersDrifted;
    }
  } catch {
    // Described as far as the server still knows it.
  }
  return run;
}
