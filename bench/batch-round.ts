/**
 * One round of the batch benchmark: two fresh databases (T for the Temporal path, D for the
 * direct one), an untimed warm-up of both paths, then backfill of the data file by each
 * path and reprocess of what they stored by each path, in the round's order, each timed
 * after a checkpoint. Rounds alternate the order, so neither path always runs first (the
 * first one pays for things the second reuses, such as new WAL segments).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import { createActivities } from '../src/worker/activities';
import type { Config } from '../src/config';
import { createKafka } from '../src/pipeline/kafka-client';
import { createLogger } from '../src/log';
import { createPool } from '../src/store/pool';
import type { BackfillProgress } from '../workflows/backfill';
import type { ReprocessSummary } from '../workflows/reprocess';
import { backfillDirect, backfillKafkaDirect, reprocessDirect } from './batch-direct';
import type { JobRun, RoundOrder } from './batch-report';
import { startBenchWorker } from './lib/bench-worker';
import { writeTrafficFile, type TrafficFile } from './lib/event-data';
import { checkpoint, cpuPer, runSql, timePhase, type PhaseTiming } from './lib/phases';
import type { CpuGroups } from './lib/procfs';
import type { BenchResources } from './lib/resources';
import { workflowTiming, type WorkflowTiming } from './lib/workflow-history';

export interface RoundContext {
  config: Config;
  client: Client;
  resources: BenchResources;
  groups: CpuGroups;
  machineCores: number;
  dataFile: string;
  /** The data file's records on a Kafka topic, one message per line, keyed by hunt. */
  topic: string;
  traffic: TrafficFile;
  warmup: TrafficFile;
  chunkSize: number;
  huntsPerChunk: number;
  log: (message: string) => void;
}

export interface RoundResult {
  order: RoundOrder;
  backfill: { temporal: JobRun; direct: JobRun };
  reprocess: { temporal: JobRun; direct: JobRun };
  /** The same records backfilled from the topic, directly, into a third database. */
  backfillFromKafka: JobRun;
  stored: { events: number; quarantined: number };
  sameAfterBackfill: boolean;
  sameAfterReprocess: boolean;
  /** The Kafka backfill's projection of the measured hunts is the file backfill's (D's, warm-up hunts left out). */
  sameAfterKafkaBackfill: boolean;
}

export async function runRound(ctx: RoundContext, round: number, order: RoundOrder): Promise<RoundResult> {
  const { config, client, resources, log } = ctx;
  const logger = createLogger({ logLevel: 'warn' }, 'bench');
  const temporalUrl = await resources.createDatabase(`r${round}_temporal`);
  const directUrl = await resources.createDatabase(`r${round}_direct`);
  const taskQueue = `bench-batch-${resources.runId}-r${round}`;
  const worker = await startBenchWorker(config, temporalUrl, taskQueue);
  const directPool = createPool({ databaseUrl: directUrl }, 10);
  const direct = createActivities({ pool: directPool, kafka: createKafka(config, logger, 'hunt-bench-direct'), config: { ...config, databaseUrl: directUrl }, logger });
  const execute = async <R>(workflowType: string, label: string, input: object) => {
    const handle = await client.workflow.start(workflowType, { taskQueue, workflowId: `bench-${label}-${resources.runId}-r${round}`, args: [input] });
    return { result: (await handle.result()) as R, handle };
  };
  const backfillInput = (file: string) => ({ source: { kind: 'file', path: file }, chunkSize: ctx.chunkSize });
  const reprocessInput = { projection: 'leaderboard', huntsPerChunk: ctx.huntsPerChunk };
  const jobId = (label: string) => `bench-${label}-direct-${resources.runId}-r${round}`;

  try {
    // Warm-up, untimed: a worker's first workflow runs and the first calls of the import code
    // pay for compilation; whichever path ran first would pay it. Both databases get the same
    // warm-up events (hunts named warmup-*), so they stay alike.
    log(`round ${round} (${order}): warm-up, untimed: ${ctx.warmup.records} records backfilled and reprocessed by both paths`);
    await execute('backfill', 'warmup-backfill', backfillInput(ctx.warmup.file));
    await backfillDirect(direct, ctx.warmup.file, ctx.chunkSize, jobId('warmup-backfill'));
    await execute('reprocess', 'warmup-reprocess', reprocessInput);
    await reprocessDirect(direct, ctx.huntsPerChunk, jobId('warmup-reprocess'));

    const timedPair = async <T, D>(job: string, viaTemporal: () => Promise<T>, directly: () => Promise<D>) => {
      const phase = async <R>(label: string, work: () => Promise<R>) => {
        await checkpoint(config.databaseUrl);
        const timed = await timePhase(ctx.groups, ctx.machineCores, work);
        log(`round ${round}: ${job} ${label}: ${timed.seconds.toFixed(1)} s`);
        return timed;
      };
      if (order === 'direct first') {
        const d = await phase('directly', directly);
        return { t: await phase('via Temporal', viaTemporal), d };
      }
      const t = await phase('via Temporal', viaTemporal);
      return { t, d: await phase('directly', directly) };
    };

    const backfill = await timedPair(
      'backfill',
      () => execute<BackfillProgress>('backfill', 'backfill', backfillInput(ctx.dataFile)),
      () => backfillDirect(direct, ctx.dataFile, ctx.chunkSize, jobId('backfill')),
    );
    const stored = await storedCounts(worker.pool);
    const storedDirect = await storedCounts(directPool);
    const expected = ctx.traffic.kinds.event + ctx.warmup.kinds.event;
    if (stored.events !== expected || storedDirect.events !== expected) {
      throw new Error(`round ${round}: backfill stored ${stored.events} (Temporal) and ${storedDirect.events} (direct) events; the files hold ${expected}`);
    }
    const sameAfterBackfill = (await projectionDigest(worker.pool)) === (await projectionDigest(directPool));
    // What the Kafka backfill, after the reprocesses, must match: the file backfill's projection of the measured hunts.
    const fileBackfillDigest = await projectionDigest(directPool, { withoutWarmup: true });

    // A store of a million events has been vacuumed; a fresh bulk load has not. The projections
    // too: otherwise autovacuum, due on them after the backfill's million inserts, met one
    // path's swap (always the same path's, by the launcher's order of databases), which waited
    // deadlock_timeout (1 s) for it to give way (experiments §69).
    for (const url of [temporalUrl, directUrl]) await runSql(url, ['VACUUM (ANALYZE)']);
    const reprocess = await timedPair(
      'reprocess',
      () => execute<ReprocessSummary>('reprocess', 'reprocess', reprocessInput),
      () => reprocessDirect(direct, ctx.huntsPerChunk, jobId('reprocess')),
    );
    const sameAfterReprocess = (await projectionDigest(worker.pool)) === (await projectionDigest(directPool));

    // Last, so the figures above are as before.
    const fromKafka = await timedKafkaBackfill(ctx, round, jobId('backfill-kafka'), fileBackfillDigest);

    const backfillHistory = await workflowTiming(backfill.t.value.handle);
    const reprocessHistory = await workflowTiming(reprocess.t.value.handle);
    const events = ctx.traffic.kinds.event;
    return {
      order,
      backfill: {
        temporal: jobRun(backfill.t, 'temporal', events, backfillHistory.activities, { ...backfill.t.value.result.counts }, backfillHistory),
        direct: jobRun(backfill.d, 'direct', events, backfill.d.value.activityCalls, { ...backfill.d.value.counts }),
      },
      reprocess: {
        temporal: jobRun(reprocess.t, 'temporal', stored.events, reprocessHistory.activities, { ...reprocess.t.value.result }, reprocessHistory),
        direct: jobRun(reprocess.d, 'direct', stored.events, reprocess.d.value.activityCalls, { ...reprocess.d.value }),
      },
      backfillFromKafka: fromKafka.run,
      stored,
      sameAfterBackfill,
      sameAfterReprocess,
      sameAfterKafkaBackfill: fromKafka.sameAsFile,
    };
  } finally {
    await worker.stop();
    await directPool.end();
  }
}

/**
 * The topic's records backfilled directly into a third, fresh database (no warm-up hunts),
 * timed as the other phases are. The import code ran in the warm-up; the Kafka reader did not.
 */
async function timedKafkaBackfill(ctx: RoundContext, round: number, jobId: string, fileBackfillDigest: string): Promise<{ run: JobRun; sameAsFile: boolean }> {
  const url = await ctx.resources.createDatabase(`r${round}_kafka`);
  const pool = createPool({ databaseUrl: url }, 10);
  try {
    const logger = createLogger({ logLevel: 'warn' }, 'bench');
    const config = { ...ctx.config, databaseUrl: url, backfill: { ...ctx.config.backfill, topics: [ctx.topic] } };
    const activities = createActivities({ pool, kafka: createKafka(ctx.config, logger, 'hunt-bench-kafka'), config, logger });
    await checkpoint(ctx.config.databaseUrl);
    const timed = await timePhase(ctx.groups, ctx.machineCores, () => backfillKafkaDirect(activities, ctx.topic, ctx.chunkSize, jobId));
    ctx.log(`round ${round}: backfill from Kafka directly: ${timed.seconds.toFixed(1)} s`);
    const stored = await storedCounts(pool);
    if (stored.events !== ctx.traffic.kinds.event) throw new Error(`round ${round}: the Kafka backfill stored ${stored.events} events; the topic holds ${ctx.traffic.kinds.event}`);
    const sameAsFile = (await projectionDigest(pool)) === fileBackfillDigest;
    return { run: jobRun(timed, 'direct', ctx.traffic.kinds.event, timed.value.activityCalls, { ...timed.value.counts }), sameAsFile };
  } finally {
    await pool.end();
  }
}

function jobRun(timing: PhaseTiming, pathName: JobRun['path'], events: number, activityCalls: number, detail: Record<string, unknown>, workflow?: WorkflowTiming): JobRun {
  return {
    path: pathName,
    seconds: timing.seconds,
    eventsPerSecond: Math.round(events / timing.seconds),
    activityCalls,
    workflow,
    cpu: timing.cpu,
    stealCores: timing.stealCores,
    cpuMicrosPerEvent: cpuPer(timing, events),
    detail,
  };
}

/** A small file of the same mix, its hunts renamed warmup-* so they never meet the measured ones. */
export function writeWarmupFile(file: string, options: { events: number; hunts: number; players: number; duplicates: number; invalid: number; seed: number }): TrafficFile {
  const warmup = writeTrafficFile({
    file,
    events: options.events,
    hunts: Math.min(10, options.hunts),
    playersPerHunt: options.players,
    duplicateFraction: options.duplicates,
    invalidFraction: options.invalid,
    seed: options.seed,
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replaceAll('"huntId":"hunt-', '"huntId":"warmup-'));
  return warmup;
}

async function storedCounts(pool: pg.Pool): Promise<{ events: number; quarantined: number }> {
  const { rows } = await pool.query<{ events: number; quarantined: number }>(
    'SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM quarantine) AS quarantined',
  );
  return rows[0] ?? { events: 0, quarantined: 0 };
}

/** md5 of every live projection row in key order: equal digests, equal projections. */
async function projectionDigest(pool: pg.Pool, options: { withoutWarmup?: boolean } = {}): Promise<string> {
  const where = options.withoutWarmup ? `WHERE hunt_id NOT LIKE 'warmup-%'` : '';
  const { rows } = await pool.query<{ digest: string }>(
    `SELECT md5(
       (SELECT string_agg(concat_ws('|', hunt_id, player_id, score, clues_found, treasures_claimed, display_name, active), E'\\n' ORDER BY hunt_id, player_id) FROM player_scores ${where})
       || (SELECT coalesce(string_agg(concat_ws('|', hunt_id, treasure_id, player_id), E'\\n' ORDER BY hunt_id, treasure_id), '') FROM treasure_winners ${where})
     ) AS digest`,
  );
  return rows[0]?.digest ?? '';
}
