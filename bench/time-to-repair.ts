/**
 * Time from a corruption to its repair by the reconcile Schedule. A worker of the bench
 * serves a schedule of the run's own (the `hunt-reconcile` spec: same workflow, input `{}`,
 * interval, overlap policy and catch-up window, but its own id and task queue, so the
 * operator's schedule is untouched). A small stream of events keeps one hunt active (the job
 * reconciles only hunts with events since its watermark). Player rows of that hunt are
 * corrupted (score + 1000) at phases spread evenly over the schedule's interval, and each
 * is polled every second until it equals the recomputation from raw events again.
 *
 * With corruptions at uniformly spread phases, the mean time to repair estimates the
 * expected value for a corruption at a random moment: half the interval plus the time from
 * a scheduled fire to the repair's commit.
 */
import type { Client } from '@temporalio/client';
import pg from 'pg';
import type { Config } from '../src/config';
import type { HuntEvent } from '../src/events/schema';
import { scheduleSpecs } from '../src/temporal/schedules';
import { HUNT_JOB_KIND } from '../src/temporal/search-attributes';
import { startBenchWorker, type BenchWorker } from './lib/bench-worker';
import { huntEvents, storeEvents } from './lib/event-data';
import { round } from './lib/procfs';
import { corrupt, describeRun, driftedPlayers, type ScheduledRun } from './lib/repair-probes';

export type { ScheduledRun };

export interface TimeToRepairOptions {
  config: Config;
  client: Client;
  databaseUrl: string;
  runId: string;
  interval: string;
  samples: number;
  streamRate: number;
  seed: number;
  log: (message: string) => void;
}

export interface RepairSample {
  playerId: string;
  /** Where in the interval the corruption was planned, as a fraction after a fire. */
  phase: number;
  corruptedAt: string;
  repairedAt?: string;
  /** Corruption committed → first poll that saw the row equal to the recomputation (±1 s). */
  seconds?: number;
  /** The scheduled fire that repaired it, and the seconds from that fire to the poll. */
  fireAt?: string;
  secondsAfterFire?: number;
}

export interface TimeToRepairResult {
  interval: string;
  intervalSeconds: number;
  scheduleId: string;
  overlap: string;
  catchupWindow: string;
  samples: RepairSample[];
  runs: ScheduledRun[];
  repaired: number;
  meanSeconds?: number;
  maxSeconds?: number;
  minSeconds?: number;
  /** Mean of (repair seen − scheduled fire) over the samples. */
  meanSecondsAfterFire?: number;
  /** Half the interval plus meanSecondsAfterFire: what a corruption at a random moment waits on average. */
  expectedSeconds?: number;
  streamEvents: number;
  streamRate: number;
  liveHuntEventsAtEnd: number;
  /** Player rows differing from the recomputation before any corruption (should be 0). */
  baselineDrift: number;
  pollChecks: number;
  pollCheckMeanMs: number;
  elapsedSeconds: number;
  warnings: string[];
}

const HUNT = 'hunt-0';
const PLAYERS = 50;
const PRELOAD_EVENTS = 500;
const STREAM_TICK_MS = 250;

export function parseDuration(raw: string): number | undefined {
  const match = /^(\d+)\s*(ms|s|m|h|seconds?|minutes?|hours?)$/.exec(raw.trim());
  if (!match) return undefined;
  const unit = match[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit.startsWith('h') ? 3_600_000 : unit === 'm' || unit.startsWith('min') ? 60_000 : 1000;
  return Number(match[1]) * factor;
}

export interface TimeToRepairRun {
  /** Resolves when every sample is repaired or the deadline passed. */
  done: Promise<TimeToRepairResult>;
  /** Stops the stream, deletes the schedule, terminates its running workflows, stops the worker. */
  dispose(): Promise<string[]>;
}

export async function startTimeToRepair(options: TimeToRepairOptions): Promise<TimeToRepairRun> {
  const { config, client, log } = options;
  const intervalMs = parseDuration(options.interval);
  if (intervalMs === undefined) throw new Error(`time-to-repair: bad interval '${options.interval}'`);
  const started = Date.now();
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 3 });
  const events = huntEvents(HUNT, Number.POSITIVE_INFINITY, { playersPerHunt: PLAYERS, seed: options.seed });
  const take = (n: number): HuntEvent[] => {
    const out: HuntEvent[] = [];
    for (let i = 0; i < n; i++) {
      const next = events.next();
      if (!next.done) out.push(next.value);
    }
    return out;
  };
  let streamEvents = await storeEvents(pool, take(PRELOAD_EVENTS), 1000, 'bench:stream');

  const taskQueue = `bench-reconcile-${options.runId}`;
  const worker: BenchWorker = await startBenchWorker(config, options.databaseUrl, taskQueue);
  const spec = scheduleSpecs({ ...config, schedules: { ...config.schedules, reconcileEvery: options.interval } }).find((s) => s.scheduleId === 'hunt-reconcile');
  if (!spec?.every) throw new Error('time-to-repair: src/temporal/schedules.ts declares no interval schedule hunt-reconcile');
  const scheduleId = `bench-reconcile-${options.runId}`;
  const schedule = await client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every: spec.every }] },
    action: {
      type: 'startWorkflow',
      workflowType: spec.workflowType,
      args: [spec.input],
      taskQueue,
      workflowId: scheduleId,
      typedSearchAttributes: [{ key: HUNT_JOB_KIND, value: spec.workflowType }],
    },
    policies: { overlap: spec.overlap, catchupWindow: spec.catchupWindow },
    memo: { rationale: `benchmark ${options.runId}: time from a corruption to its repair; deleted at the end of the run` },
  });
  const nextFire = (await schedule.describe()).info.nextActionTimes[0]?.getTime();
  if (nextFire === undefined) throw new Error('time-to-repair: the schedule has no next action time');

  // Phases (i + 0.5) / K after a fire, each at its first occurrence from 5 s on.
  const plan = Array.from({ length: options.samples }, (_, i) => {
    const phase = (i + 0.5) / options.samples;
    let at = nextFire - intervalMs + phase * intervalMs;
    while (at < Date.now() + 5000) at += intervalMs;
    return { phase, at };
  }).sort((a, b) => a.at - b.at);
  const lastCorruption = plan[plan.length - 1]?.at ?? Date.now();
  const deadline = lastCorruption + intervalMs + 120_000;
  log(`time-to-repair: schedule ${scheduleId} every ${options.interval}, next fire ${new Date(nextFire).toISOString()}; ` +
    `${plan.length} corruptions from ${new Date(plan[0]?.at ?? 0).toISOString()} to ${new Date(lastCorruption).toISOString()}`);

  const { rows: players } = await pool.query<{ player_id: string }>('SELECT player_id FROM player_scores WHERE hunt_id = $1 ORDER BY player_id LIMIT $2', [HUNT, plan.length]);
  if (players.length < plan.length) throw new Error(`time-to-repair: only ${players.length} players in ${HUNT}`);

  let stopped = false;
  const warnings: string[] = [];
  // The stream: rate/4 events every 250 ms, carrying fractions over.
  let owed = 0;
  const stream = (async () => {
    while (!stopped) {
      owed += (options.streamRate * STREAM_TICK_MS) / 1000;
      const n = Math.floor(owed);
      owed -= n;
      if (n > 0) streamEvents += await storeEvents(pool, take(n), 1000, 'bench:stream').catch((err: Error) => (warnings.push(`stream: ${err.message}`), 0));
      await sleep(STREAM_TICK_MS);
    }
  })();

  const samples: (RepairSample & { corruptedMs?: number })[] = [];
  let baselineDrift = -1;
  let checks = 0;
  let checkMs = 0;
  const done = (async (): Promise<TimeToRepairResult> => {
    while (!stopped && Date.now() < deadline) {
      const due = plan.filter((p, i) => p.at <= Date.now() && samples.length <= i);
      for (const p of due) {
        const playerId = players[samples.length]?.player_id as string;
        await corrupt(pool, HUNT, playerId);
        const at = Date.now();
        samples.push({ playerId, phase: p.phase, corruptedAt: new Date(at).toISOString(), corruptedMs: at });
        log(`time-to-repair: corrupted ${HUNT}/${playerId} (phase ${p.phase.toFixed(2)})`);
      }
      const open = samples.filter((s) => s.repairedAt === undefined);
      if (baselineDrift < 0 || open.length > 0) {
        const polledAt = Date.now();
        const drifted = await driftedPlayers(pool, HUNT);
        checks++;
        checkMs += Date.now() - polledAt;
        if (baselineDrift < 0) baselineDrift = drifted.size;
        for (const s of open) {
          if (!drifted.has(s.playerId)) {
            s.repairedAt = new Date(polledAt).toISOString();
            s.seconds = round((polledAt - (s.corruptedMs ?? polledAt)) / 1000, 1);
            log(`time-to-repair: ${HUNT}/${s.playerId} repaired after ${s.seconds} s`);
          }
        }
      }
      if (samples.length === plan.length && samples.every((s) => s.repairedAt !== undefined)) break;
      await sleep(Math.max(0, 1000 - (Date.now() % 1000)));
    }
    const description = await schedule.describe();
    const runs = await Promise.all(description.info.recentActions.map((a) => describeRun(client, a)));
    for (const s of samples) {
      const fire = runs.map((r) => Date.parse(r.scheduledAt)).filter((t) => t >= (s.corruptedMs ?? 0)).sort((a, b) => a - b)[0];
      if (fire !== undefined && s.repairedAt) {
        s.fireAt = new Date(fire).toISOString();
        s.secondsAfterFire = round((Date.parse(s.repairedAt) - fire) / 1000, 1);
      }
      delete s.corruptedMs;
    }
    const repaired = samples.flatMap((s) => (s.seconds === undefined ? [] : [s.seconds]));
    const afterFire = samples.flatMap((s) => (s.secondsAfterFire === undefined ? [] : [s.secondsAfterFire]));
    const mean = (xs: number[]) => (xs.length ? round(xs.reduce((a, b) => a + b, 0) / xs.length, 1) : undefined);
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE hunt_id = $1', [HUNT]);
    if (samples.length < plan.length || repaired.length < samples.length) warnings.push(`${samples.length - repaired.length + plan.length - samples.length} corruption(s) not repaired before the deadline`);
    if (baselineDrift > 0) warnings.push(`${baselineDrift} player row(s) differed from the recomputation before any corruption`);
    const meanAfterFire = mean(afterFire);
    return {
      interval: options.interval,
      intervalSeconds: intervalMs / 1000,
      scheduleId,
      overlap: String(spec.overlap),
      catchupWindow: spec.catchupWindow,
      samples,
      runs,
      repaired: repaired.length,
      meanSeconds: mean(repaired),
      maxSeconds: repaired.length ? Math.max(...repaired) : undefined,
      minSeconds: repaired.length ? Math.min(...repaired) : undefined,
      meanSecondsAfterFire: meanAfterFire,
      expectedSeconds: meanAfterFire === undefined ? undefined : round(intervalMs / 2000 + meanAfterFire, 1),
      streamEvents,
      streamRate: options.streamRate,
      liveHuntEventsAtEnd: rows[0]?.n ?? 0,
      baselineDrift,
      pollChecks: checks,
      pollCheckMeanMs: checks ? round(checkMs / checks, 1) : 0,
      elapsedSeconds: round((Date.now() - started) / 1000, 1),
      warnings,
    };
  })();

  // Awaited by the caller on success; on an early dispose nobody awaits it.
  done.catch(() => undefined);
  return {
    done,
    async dispose() {
      const problems: string[] = [];
      stopped = true;
      await stream;
      await done.catch(() => undefined);
      try {
        const description = await schedule.describe();
        for (const running of description.info.runningActions) {
          await client.workflow.getHandle(running.workflow.workflowId).terminate('benchmark finished').catch(() => undefined);
        }
        await schedule.delete();
      } catch (err) {
        problems.push(`delete schedule ${scheduleId}: ${(err as Error).message}`);
      }
      await worker.stop().catch((err: Error) => problems.push(`stop worker: ${err.message}`));
      await pool.end();
      return problems;
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
