/**
 * The reconcile benchmark: recomputation rate for one hunt of 1,000,000 events and for 1,000
 * hunts of 1,000 events (the store step the reconcile activity runs, then the same through
 * the workflow), and the time from a corruption to its repair by the reconcile Schedule at
 * its default interval. The time-to-repair part mostly waits for the schedule, so it runs
 * beside the recomputation part to keep the whole run near two intervals.
 */
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type pg from 'pg';
import type { ReconcileSummary } from '../src/correctness/reconcile-job';
import { loadConfig, projectRoot, type Config } from '../src/config';
import { createKafka } from '../src/pipeline/kafka-client';
import { createLogger } from '../src/log';
import { createPool } from '../src/store/pool';
import { reconcileHunts } from '../src/store/correctness/reconcile';
import { startBenchWorker, workflowBundle } from './lib/bench-worker';
import { startFenceProbe } from './lib/fence-probe';
import { huntEvents, storeEvents } from './lib/event-data';
import { batchCpuGroups, machineOf } from './lib/machine';
import { checkpoint, cpuPer, runSql, timePhase } from './lib/phases';
import { backgroundLoad, round, type CpuGroups } from './lib/procfs';
import { BenchResources } from './lib/resources';
import { resultFilesOf, writeResultFiles } from './lib/results-files';
import { step } from './lib/step';
import { workflowTiming } from './lib/workflow-history';
import { reconcileFigures, renderReconcileMarkdown, type ReconcileBenchResult, type RecomputeCase, type RecomputeRun } from './reconcile-report';
import { startTimeToRepair, type TimeToRepairResult, type TimeToRepairRun } from './time-to-repair';

export { parseDuration } from './time-to-repair';

export interface ReconcileBenchOptions {
  singleEvents: number;
  singlePlayers: number;
  hunts: number;
  huntEvents: number;
  huntPlayers: number;
  huntsPerTransaction: number;
  seed: number;
  interval?: string;
  samples: number;
  streamRate: number;
  recompute: boolean;
  timeToRepair: boolean;
  workflow: boolean;
  keep: boolean;
}

const RESULTS_DIR = path.join(projectRoot, 'bench/results');
const LOAD_CHUNK = 5000;

interface Context {
  config: Config;
  client: Client;
  resources: BenchResources;
  groups: CpuGroups;
  machineCores: number;
  options: ReconcileBenchOptions;
}

export async function runReconcileBench(options: ReconcileBenchOptions, command: string): Promise<ReconcileBenchResult> {
  const config = loadConfig();
  const interval = options.interval ?? config.schedules.reconcileEvery;
  const resources = new BenchResources(config.databaseUrl, createKafka(config, createLogger({ logLevel: 'warn' }, 'bench'), 'hunt-bench'));
  let repair: TimeToRepairRun | undefined;
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async (): Promise<string[]> => {
    const problems = (await repair?.dispose().catch((err: Error) => [err.message])) ?? [];
    repair = undefined;
    for (const fn of cleanups.splice(0).reverse()) await fn().catch((err: Error) => problems.push(err.message));
    return [...problems, ...(options.keep ? ['kept (--keep): databases were not dropped'] : await resources.dispose())];
  };
  const onSignal = () => {
    step('interrupted: deleting the schedule, dropping what this run created');
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  const startedAt = new Date().toISOString();
  const machineCores = os.availableParallelism();
  const groups = await batchCpuGroups(config.databaseUrl, config.stack.stateDir);
  const background = await backgroundLoad();
  step(`background load before the run: ${background.machineBusyCores} of ${machineCores} cores busy`);

  try {
    const connection = await Connection.connect({ address: config.temporal.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace: config.temporal.namespace });
    await workflowBundle();
    const ctx: Context = { config, client, resources, groups, machineCores, options };

    if (options.timeToRepair) {
      repair = await startTimeToRepair({
        config,
        client,
        databaseUrl: await resources.createDatabase('repair'),
        runId: resources.runId,
        interval,
        samples: options.samples,
        streamRate: options.streamRate,
        seed: options.seed + 100_000,
        log: step,
      });
    }
    const recompute = options.recompute ? await measureRecompute(ctx) : undefined;
    let timeToRepair: TimeToRepairResult | undefined;
    if (repair) {
      step('waiting for the last corruptions to be repaired');
      timeToRepair = await repair.done;
    }

    const partial = {
      benchmark: 'reconcile' as const,
      runId: resources.runId,
      startedAt,
      command,
      machine: await machineOf(config.databaseUrl, { temporal: await temporalVersion(config, client) }),
      background,
      setup: {
        huntsPerTransaction: options.huntsPerTransaction,
        seed: options.seed,
        interval,
        intervalIsDefault: options.interval === undefined,
        samples: options.samples,
        streamRate: options.streamRate,
        concurrent: options.recompute && options.timeToRepair,
      },
      recompute,
      timeToRepair,
    };
    const cleanup = await cleanUp();
    const result: ReconcileBenchResult = { ...partial, figures: reconcileFigures(partial), finishedAt: new Date().toISOString(), cleanup };
    const files = resultFilesOf(RESULTS_DIR, 'reconcile', startedAt);
    writeResultFiles(files, result, renderReconcileMarkdown(result, path.basename(files.json)));
    step(`wrote ${path.relative(projectRoot, files.json)}, ${path.relative(projectRoot, files.markdown)} and ${path.relative(projectRoot, files.latest)}`);
    return result;
  } catch (err) {
    await cleanUp().catch(() => undefined);
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}

async function measureRecompute(ctx: Context): Promise<{ single: RecomputeCase; many: RecomputeCase }> {
  const { options } = ctx;
  const singleUrl = await ctx.resources.createDatabase('single');
  const manyUrl = await ctx.resources.createDatabase('many');
  const single = { url: singleUrl, pool: createPool({ databaseUrl: singleUrl }, 10), huntIds: ['hunt-0'] };
  const many = { url: manyUrl, pool: createPool({ databaseUrl: manyUrl }, 10), huntIds: Array.from({ length: options.hunts }, (_, h) => `hunt-${h}`) };
  try {
    step(`storing ${options.singleEvents.toLocaleString('en-US')} events of one hunt and ${options.hunts} hunts × ${options.huntEvents} events, side by side`);
    const load = async (pool: pg.Pool, events: Iterable<import('../src/events/schema').HuntEvent>) => {
      const started = performance.now();
      const stored = await storeEvents(pool, events, LOAD_CHUNK, 'bench:reconcile');
      return { stored, seconds: round((performance.now() - started) / 1000, 1) };
    };
    const [singleLoad, manyLoad] = await Promise.all([
      load(single.pool, huntEvents('hunt-0', options.singleEvents, { playersPerHunt: options.singlePlayers, seed: options.seed })),
      load(many.pool, manyHuntEvents(options)),
    ]);
    step(`stored ${singleLoad.stored} events in ${singleLoad.seconds} s and ${manyLoad.stored} in ${manyLoad.seconds} s`);
    for (const url of [single.url, many.url]) await runSql(url, ['VACUUM (ANALYZE)']);

    const singleCase = await measureCase(ctx, single, {
      label: `1 hunt × ${options.singleEvents.toLocaleString('en-US')} events (${options.singlePlayers} players)`,
      hunts: 1, eventsPerHunt: options.singleEvents, playersPerHunt: options.singlePlayers, events: singleLoad.stored, loadSeconds: singleLoad.seconds,
    });
    const manyCase = await measureCase(ctx, many, {
      label: `${options.hunts.toLocaleString('en-US')} hunts × ${options.huntEvents.toLocaleString('en-US')} events (${options.huntPlayers} players each)`,
      hunts: options.hunts, eventsPerHunt: options.huntEvents, playersPerHunt: options.huntPlayers, events: manyLoad.stored, loadSeconds: manyLoad.seconds,
    });
    return { single: singleCase, many: manyCase };
  } finally {
    await single.pool.end();
    await many.pool.end();
  }
}

function* manyHuntEvents(options: ReconcileBenchOptions) {
  for (let h = 0; h < options.hunts; h++) yield* huntEvents(`hunt-${h}`, options.huntEvents, { playersPerHunt: options.huntPlayers, seed: options.seed + 1 + h });
}

type CaseSetup = Omit<RecomputeCase, 'direct' | 'temporal' | 'overhead'>;

async function measureCase(ctx: Context, db: { url: string; pool: pg.Pool; huntIds: string[] }, setup: CaseSetup): Promise<RecomputeCase> {
  const per = ctx.options.huntsPerTransaction;
  await checkpoint(ctx.config.databaseUrl);
  step(`recompute ${setup.label}: reconcileHunts directly`);
  const runId = `bench-${ctx.resources.runId}-direct`;
  const probe = startFenceProbe(db.pool, db.huntIds);
  const direct = await timePhase(ctx.groups, ctx.machineCores, async () => {
    const totals = { playersChecked: 0, playersDrifted: 0, treasuresChanged: 0, transactions: 0 };
    for (let i = 0; i < db.huntIds.length; i += per) {
      for (const r of await reconcileHunts(db.pool, db.huntIds.slice(i, i + per), runId, true)) {
        totals.playersChecked += r.playersChecked;
        totals.playersDrifted += r.playersDrifted;
        totals.treasuresChanged += r.treasuresChanged;
      }
      totals.transactions++;
    }
    return totals;
  });
  const fenceWait = await probe.stop();
  const rate = (seconds: number) => Math.round(setup.events / seconds);
  const directRun: RecomputeRun = {
    path: 'direct',
    seconds: direct.seconds,
    eventsPerSecond: rate(direct.seconds),
    ...direct.value,
    cpu: direct.cpu,
    stealCores: direct.stealCores,
    cpuMicrosPerEvent: cpuPer(direct, setup.events),
    fenceWait,
  };
  step(`direct: ${direct.seconds.toFixed(1)} s, ${directRun.eventsPerSecond} events/s; the hot path waited for a fence at most ${fenceWait.maxMs} ms`);
  if (!ctx.options.workflow) return { ...setup, direct: directRun };

  const taskQueue = `bench-recompute-${ctx.resources.runId}-${setup.hunts}`;
  const worker = await startBenchWorker(ctx.config, db.url, taskQueue);
  try {
    // Untimed: a new worker's first workflow run pays for loading the workflow code (a hunt with no events: nothing to do).
    await ctx.client.workflow.execute('reconcile', { taskQueue, workflowId: `bench-warmup-${ctx.resources.runId}-${setup.hunts}`, args: [{ huntIds: ['bench-warmup-no-such-hunt'], repair: true }] });
    await checkpoint(ctx.config.databaseUrl);
    step(`recompute ${setup.label}: the reconcile workflow`);
    const viaTemporal = await timePhase(ctx.groups, ctx.machineCores, async () => {
      const handle = await ctx.client.workflow.start('reconcile', {
        taskQueue,
        workflowId: `bench-reconcile-${ctx.resources.runId}-${setup.hunts}`,
        args: [{ huntIds: db.huntIds, repair: true, huntsPerTransaction: per }],
      });
      return { summary: (await handle.result()) as ReconcileSummary, handle };
    });
    const s = viaTemporal.value.summary;
    const temporalRun: RecomputeRun = {
      path: 'temporal',
      seconds: viaTemporal.seconds,
      eventsPerSecond: rate(viaTemporal.seconds),
      transactions: Math.ceil(s.hunts / per),
      playersChecked: s.playersChecked,
      playersDrifted: s.playersDrifted,
      treasuresChanged: s.treasuresChanged,
      workflow: await workflowTiming(viaTemporal.value.handle),
      cpu: viaTemporal.cpu,
      stealCores: viaTemporal.stealCores,
      cpuMicrosPerEvent: cpuPer(viaTemporal, setup.events),
    };
    step(`workflow: ${viaTemporal.seconds.toFixed(1)} s, ${temporalRun.eventsPerSecond} events/s`);
    return { ...setup, direct: directRun, temporal: temporalRun, overhead: round(viaTemporal.seconds / direct.seconds - 1, 4) };
  } finally {
    await worker.stop();
  }
}

async function temporalVersion(config: Config, client: Client): Promise<string> {
  const info = await client.workflowService.getSystemInfo({}).catch(() => undefined);
  return `Temporal ${info?.serverVersion ?? '(version unknown)'} at ${config.temporal.address}`;
}
