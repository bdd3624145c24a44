/**
 * The batch benchmark: backfill and reprocess rates over a million stored events, each run
 * through Temporal (workflow on a worker) and with the same activity code called directly,
 * giving Temporal's overhead as a ratio. Rounds alternate which path goes first
 * (batch-round.ts); the figures are means over the rounds. Every database is fresh and
 * dropped at the end; the data files are deleted too.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig, projectRoot, type Config } from '../src/config';
import { createKafka } from '../src/pipeline/kafka-client';
import { createLogger } from '../src/log';
import { batchVerdicts, renderBatchMarkdown, type BatchBenchResult, type JobComparison, type JobRun, type KafkaBackfillRuns, type RoundOrder } from './batch-report';
import { runRound, writeWarmupFile, type RoundResult } from './batch-round';
import { workflowBundle } from './lib/bench-worker';
import { writeTrafficFile } from './lib/event-data';
import { produceFileToTopic } from './lib/file-to-topic';
import { batchCpuGroups, machineOf } from './lib/machine';
import { backgroundLoad, round } from './lib/procfs';
import { BenchResources } from './lib/resources';
import { resultFilesOf, writeResultFiles } from './lib/results-files';
import { step } from './lib/step';

export interface BatchBenchOptions {
  events: number;
  hunts: number;
  players: number;
  duplicates: number;
  invalid: number;
  seed: number;
  chunkSize: number;
  huntsPerChunk: number;
  /** Rounds of both paths; the order alternates from round to round. */
  rounds: number;
  /** Time the direct path first in the first round. */
  directFirst: boolean;
  keep: boolean;
}

const RESULTS_DIR = path.join(projectRoot, 'bench/results');
const WARMUP_EVENTS = 20_000;
/** Partitions of the topic the Kafka backfill reads: as the input topic's in the local stack. */
const KAFKA_PARTITIONS = 4;

export async function runBatchBench(options: BatchBenchOptions, command: string): Promise<BatchBenchResult> {
  const config = loadConfig();
  const kafka = createKafka(config, createLogger({ logLevel: 'warn' }, 'bench'), 'hunt-bench');
  const resources = new BenchResources(config.databaseUrl, kafka);
  // Backfill reads only files under the import folder.
  const dataDir = path.join(config.backfill.importDir, 'bench-data');
  const dataFile = path.join(dataDir, `batch-${resources.runId}.ndjson`);
  const warmupFile = path.join(dataDir, `batch-${resources.runId}-warmup.ndjson`);
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch((err: Error) => step(`cleanup: ${err.message}`));
    if (options.keep) return ['kept (--keep): databases and data files were not dropped'];
    for (const file of [dataFile, warmupFile]) fs.rmSync(file, { force: true });
    return resources.dispose();
  };
  const onSignal = () => {
    step('interrupted: dropping what this run created');
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  const startedAt = new Date().toISOString();
  const machineCores = os.availableParallelism();
  const groups = await batchCpuGroups(config.databaseUrl, config.stack.stateDir);
  const background = await backgroundLoad();
  step(`background load before the run: ${background.machineBusyCores} of ${machineCores} cores busy`);

  try {
    step(`run ${resources.runId}: writing ${options.events.toLocaleString('en-US')} events to ${path.relative(projectRoot, dataFile)}`);
    const traffic = writeTrafficFile({
      file: dataFile,
      events: options.events,
      hunts: options.hunts,
      playersPerHunt: options.players,
      duplicateFraction: options.duplicates,
      invalidFraction: options.invalid,
      seed: options.seed,
    });
    step(`${traffic.records} records (${(traffic.bytes / 2 ** 20).toFixed(0)} MB) in ${traffic.seconds.toFixed(1)} s`);
    const topic = await resources.createTopic('backfill', KAFKA_PARTITIONS);
    const produced = await produceFileToTopic(kafka, dataFile, topic, traffic.records);
    step(`the same records on topic ${topic} (${KAFKA_PARTITIONS} partitions, keyed by hunt) in ${produced.seconds.toFixed(1)} s`);
    const warmup = writeWarmupFile(warmupFile, { ...options, events: Math.min(WARMUP_EVENTS, options.events), seed: options.seed + 1 });

    const bundleStarted = performance.now();
    await workflowBundle();
    const workerBundleSeconds = (performance.now() - bundleStarted) / 1000;
    const connection = await Connection.connect({ address: config.temporal.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace: config.temporal.namespace });

    const ctx = { config, client, resources, groups, machineCores, dataFile, topic, traffic, warmup, chunkSize: options.chunkSize, huntsPerChunk: options.huntsPerChunk, log: step };
    const rounds: RoundResult[] = [];
    for (let r = 1; r <= options.rounds; r++) {
      const temporalFirst = (r % 2 === 1) !== options.directFirst;
      rounds.push(await runRound(ctx, r, temporalFirst ? 'Temporal first' : 'direct first'));
    }
    const stored = rounds[0]?.stored ?? { events: 0, quarantined: 0 };

    const partial = {
      benchmark: 'batch' as const,
      runId: resources.runId,
      startedAt,
      command,
      machine: await machineOf(config.databaseUrl, await servicesOf(config, client)),
      background,
      setup: {
        events: traffic.kinds.event,
        warmupRecords: warmup.records,
        records: traffic.records,
        kinds: traffic.kinds,
        hunts: options.hunts,
        playersPerHunt: options.players,
        duplicateFraction: options.duplicates,
        invalidFraction: options.invalid,
        seed: options.seed,
        chunkSize: options.chunkSize,
        huntsPerChunk: options.huntsPerChunk,
        rounds: rounds.map((r) => r.order),
        fileMb: round(traffic.bytes / 2 ** 20, 1),
        kafkaPartitions: KAFKA_PARTITIONS,
        generationSeconds: round(traffic.seconds, 2),
        workerBundleSeconds: round(workerBundleSeconds, 2),
      },
      backfill: { ...compare(rounds, 'backfill', traffic.kinds.event, (r) => r.sameAfterBackfill), stored },
      reprocess: compare(rounds, 'reprocess', stored.events, (r) => r.sameAfterReprocess),
      backfillFromKafka: fromKafka(rounds, traffic.kinds.event),
    };
    const cleanup = await cleanUp();
    const result: BatchBenchResult = { ...partial, verdicts: batchVerdicts(partial), finishedAt: new Date().toISOString(), cleanup };
    const files = resultFilesOf(RESULTS_DIR, 'batch', startedAt);
    writeResultFiles(files, result, renderBatchMarkdown(result, path.basename(files.json)));
    step(`wrote ${path.relative(projectRoot, files.json)}, ${path.relative(projectRoot, files.markdown)} and ${path.relative(projectRoot, files.latest)}`);
    return result;
  } catch (err) {
    await cleanUp().catch(() => undefined);
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}

/** Means over the rounds; the overhead is the ratio of the mean times. */
function compare(rounds: RoundResult[], job: 'backfill' | 'reprocess', events: number, same: (r: RoundResult) => boolean): JobComparison {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const temporalSeconds = mean(rounds.map((r) => r[job].temporal.seconds));
  const directSeconds = mean(rounds.map((r) => r[job].direct.seconds));
  return {
    rounds: rounds.map((r) => ({ order: r.order as RoundOrder, temporal: r[job].temporal, direct: r[job].direct })),
    temporalSeconds: round(temporalSeconds, 2),
    directSeconds: round(directSeconds, 2),
    temporalEventsPerSecond: Math.round(events / temporalSeconds),
    directEventsPerSecond: Math.round(events / directSeconds),
    overhead: round(temporalSeconds / directSeconds - 1, 4),
    overheadInRun: round(inRun(rounds.map((r) => r[job].temporal)), 4),
    sameProjection: rounds.every(same),
  };
}

/** The Kafka backfills' mean over the rounds (direct only). */
function fromKafka(rounds: RoundResult[], events: number): KafkaBackfillRuns {
  const seconds = rounds.reduce((sum, r) => sum + r.backfillFromKafka.seconds, 0) / Math.max(1, rounds.length);
  return {
    rounds: rounds.map((r) => r.backfillFromKafka),
    directSeconds: round(seconds, 2),
    directEventsPerSecond: Math.round(events / seconds),
    sameProjection: rounds.every((r) => r.sameAfterKafkaBackfill),
  };
}

/** Σ (phase time − time inside activities) / Σ time inside activities, over the Temporal runs. */
function inRun(runs: JobRun[]): number {
  const inside = runs.reduce((a, r) => a + (r.workflow?.activitySeconds ?? r.seconds), 0);
  const total = runs.reduce((a, r) => a + r.seconds, 0);
  return total / Math.max(0.001, inside) - 1;
}

async function servicesOf(config: Config, client: Client): Promise<Record<string, string>> {
  const info = await client.workflowService.getSystemInfo({}).catch(() => undefined);
  return { temporal: `Temporal ${info?.serverVersion ?? '(version unknown)'} at ${config.temporal.address}` };
}
