/**
 * The ingest benchmark, every figure of the issue in one run: preload a backlog, read it
 * with kafkajs alone (ceiling), drain it with the real ingest (ours), COPY the same rows
 * (ceiling), run the naive consumer over it for a window (baseline), optionally profile a
 * second drain, then measure freshness at a steady rate. Each part uses its own database,
 * topic and group, all dropped at the end.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig, projectRoot } from '../src/config';
import { createKafka } from '../src/pipeline/kafka-client';
import { createLogger } from '../src/log';
import { copyCeiling } from './copy-ceiling';
import { drainWithIngest, type DrainOptions } from './drain';
import { measureFreshness } from './freshness';
import { readTopic } from './kafka-ceiling';
import { postmasterPid } from './lib/machine';
import { runningPid } from '../infra/process';
import { backgroundLoad, type CpuGroups } from './lib/procfs';
import { BenchResources, topicEndOffsets } from './lib/resources';
import { step } from './lib/step';
import { runNaiveConsumer } from './naive-consumer';
import { measurePeer } from './peer-phase';
import { preloadBacklog } from './preload';
import { summarizeProfileFile } from './profile-summary';
import { TARGETS, verdictsOf, writeResults, type IngestBenchResult } from './report';

export interface IngestBenchOptions {
  events: number;
  hunts: number;
  players: number;
  duplicates: number;
  invalid: number;
  seed: number;
  naiveSeconds: number;
  freshnessSeconds: number;
  freshnessRate: number;
  warmupSeconds: number;
  profile: boolean;
  profileSeconds: number;
  keep: boolean;
  /** Also drain with this many ingest processes in one group (0: skip). */
  scaleOut: number;
  /** Also drain the same events with the industry peer (Kafka Connect + the Debezium JDBC sink). */
  peer: boolean;
  /** The peer's task counts, one drain each (the issue's figures were for 1; 2 is its best here). */
  peerTasks: number[];
  /** INGEST_* / KAFKA_* overrides for every ingest child (ours, profiled, freshness). */
  ingestEnv: Record<string, string>;
}

const PARTITIONS = 4;
const RESULTS_DIR = path.join(projectRoot, 'bench/results');

export async function runIngestBench(options: IngestBenchOptions, command: string): Promise<IngestBenchResult> {
  const config = loadConfig();
  const kafka = createKafka(config, createLogger({ logLevel: 'warn' }, 'bench'), 'hunt-bench');
  const resources = new BenchResources(config.databaseUrl, kafka);
  const rawDir = path.join(RESULTS_DIR, 'raw', `ingest-${resources.runId}`);
  fs.mkdirSync(rawDir, { recursive: true });
  const onSignal = () => {
    step('interrupted: dropping what this run created');
    void resources.dispose().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  const startedAt = new Date().toISOString();
  const cpuGroups = await cpuGroupsOf(config.databaseUrl, config.stack.stateDir);
  const machineCores = os.availableParallelism();
  // Other people's work on a shared machine skews every figure; record how much there was.
  const background = await backgroundLoad();
  step(`background load before the run: ${background.machineBusyCores} of ${machineCores} cores busy`);

  try {
    // Freshness first, on a quiet machine: after the drains, Postgres is still vacuuming and
    // checkpointing their million-row databases, which is the drains' cost, not the steady state's.
    step(`freshness: ${options.freshnessRate}/s for ${options.freshnessSeconds} s`);
    const freshness = await measureFreshness(kafka, {
      databaseUrl: await resources.createDatabase('fresh'),
      topic: await resources.createTopic('fresh', PARTITIONS),
      groupId: resources.groupId('fresh'),
      rate: options.freshnessRate,
      seconds: options.freshnessSeconds,
      warmupSeconds: options.warmupSeconds,
      hunts: options.hunts,
      playersPerHunt: options.players,
      duplicateFraction: options.duplicates,
      invalidFraction: options.invalid,
      seed: options.seed + 1,
      rawDir,
      targetMs: TARGETS.freshnessP99Ms,
      p50TargetMs: TARGETS.freshnessP50Ms,
      ingestEnv: options.ingestEnv,
      cpuGroups,
      machineCores,
      diskProbeDir: path.join(config.stack.stateDir, 'bench'),
    });
    step(`freshness p99 ${freshness.histogram.p99?.value} ms`);

    step(`run ${resources.runId}: preloading ${options.events.toLocaleString('en-US')} records`);
    const topic = await resources.createTopic('backlog', PARTITIONS);
    const preload = await preloadBacklog(kafka, {
      topic,
      events: options.events,
      hunts: options.hunts,
      playersPerHunt: options.players,
      duplicateFraction: options.duplicates,
      invalidFraction: options.invalid,
      seed: options.seed,
    });
    // Per partition: what each scale-out member's share should follow.
    const { total: records, perPartition: partitionRecords } = await topicEndOffsets(kafka, topic);
    step(`preloaded ${records} records in ${preload.seconds.toFixed(1)} s`);

    const kafkaRead = await readTopic(kafka, { topic, groupId: resources.groupId('read'), records, ingest: config.ingest, classify: false });
    step(`ceiling, kafkajs read: ${kafkaRead.eventsPerSecond} events/s`);
    const kafkaReadAndClassify = await readTopic(kafka, { topic, groupId: resources.groupId('classify'), records, ingest: config.ingest, classify: true });
    step(`kafkajs read + classify: ${kafkaReadAndClassify.eventsPerSecond} events/s`);

    const drainBase = { topic, records, rawDir, cpuGroups, machineCores, env: options.ingestEnv } satisfies Partial<DrainOptions>;
    const oursUrl = await resources.createDatabase('ours');
    const ours = await drainWithIngest({ ...drainBase, databaseUrl: oursUrl, groupId: resources.groupId('ours'), label: 'ours' });
    step(`ours: ${ours.eventsPerSecond} events/s, peak RSS ${ours.rss.kernelPeakMb} MB`);

    let peer: IngestBenchResult['peer'];
    if (options.peer) {
      step(`peer: Kafka Connect + Debezium JDBC sink (${options.peerTasks.join(', ')} task(s), UNNEST writer, upsert by eventId) on the same events`);
      peer = await measurePeer(kafka, resources, {
        events: options.events,
        hunts: options.hunts,
        players: options.players,
        duplicates: options.duplicates,
        seed: options.seed,
        brokers: config.kafka.brokers,
        rawDir,
        taskCounts: options.peerTasks,
        cpuGroups: cpuGroups([]),
      });
      step(`peer: ${peer.runs.map((r) => `${r.drain.eventsPerSecond} events/s with ${r.tasks} task(s)`).join(', ')}`);
    }

    const copy = await copyCeiling(oursUrl, await resources.createDatabase('copy'));
    step(`ceiling, COPY: ${copy.rowsPerSecond} rows/s`);

    const naive = await runNaiveConsumer(kafka, {
      topic,
      groupId: resources.groupId('naive'),
      databaseUrl: await resources.createDatabase('naive'),
      windowMs: options.naiveSeconds * 1000,
      records,
    });
    step(`naive: ${naive.eventsPerSecond} events/s over ${naive.windowSeconds.toFixed(1)} s`);

    let scaleOut: IngestBenchResult['scaleOut'];
    if (options.scaleOut > 1) {
      scaleOut = await drainWithIngest({
        ...drainBase,
        databaseUrl: await resources.createDatabase('scaleout'),
        groupId: resources.groupId('scaleout'),
        label: 'scaleout',
        consumers: options.scaleOut,
      });
      step(`scale-out, ${options.scaleOut} processes: ${scaleOut.eventsPerSecond} events/s; shares ${scaleOut.perConsumer.map((c) => `${c.records} (partitions ${c.partitions.join(',')})`).join(', ')}`);
    }

    let profile: IngestBenchResult['profile'];
    if (options.profile) {
      const dir = path.join(rawDir, 'cpuprofile');
      const drain = await drainWithIngest({
        ...drainBase,
        databaseUrl: await resources.createDatabase('profile'),
        groupId: resources.groupId('profile'),
        label: 'profile',
        cpuProfileDir: dir,
        stopAfterMs: options.profileSeconds * 1000,
      });
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (tsx's loader runs in another).
      const file = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)) : undefined;
      if (file) {
        // Only the drain's samples: start-up (module loading, tsx compiling) is not the hot path.
        const window = { fromUs: drain.monotonicUs.firstCommit, toUs: drain.monotonicUs.end };
        profile = { file: path.relative(projectRoot, path.join(dir, file)), drain, summary: summarizeProfileFile(path.join(dir, file), 25, window) };
      }
      step(file ? `profiled drain: ${drain.eventsPerSecond} events/s, profile ${file}` : 'profiled drain wrote no profile');
    }

    const partial = {
      benchmark: 'ingest' as const,
      runId: resources.runId,
      startedAt,
      command,
      machine: await machineOf(config.databaseUrl, config.kafka.brokers),
      background,
      setup: {
        events: options.events,
        hunts: options.hunts,
        playersPerHunt: options.players,
        duplicateFraction: options.duplicates,
        invalidFraction: options.invalid,
        seed: options.seed,
        partitions: PARTITIONS,
        naiveSeconds: options.naiveSeconds,
        freshnessSeconds: options.freshnessSeconds,
        freshnessRate: options.freshnessRate,
        warmupSeconds: options.warmupSeconds,
        ingestBatchMode: config.ingest.batchMode,
        ingestMaxBatchEvents: config.ingest.maxBatchEvents,
        ingestPartitionsConcurrency: config.ingest.partitionsConcurrency,
        ingestEnv: Object.entries(options.ingestEnv).map(([k, v]) => `${k}=${v}`).join(' ') || '(defaults)',
      },
      preload,
      ours,
      naive,
      ceilings: { kafkaRead, copy },
      kafkaReadAndClassify,
      partitionRecords,
      peer,
      ratios: {
        vsPeer: peer ? ours.eventsPerSecond / peer.drain.eventsPerSecond : undefined,
        vsNaive: ours.eventsPerSecond / naive.eventsPerSecond,
        vsKafkaRead: ours.eventsPerSecond / kafkaRead.eventsPerSecond,
        vsCopy: ours.eventsPerSecond / copy.rowsPerSecond,
      },
      freshness,
      scaleOut,
      profile,
    };
    const cleanup = options.keep ? ['kept (--keep): databases and topics of this run were not dropped'] : await resources.dispose();
    const result: IngestBenchResult = { ...partial, verdicts: verdictsOf(partial), finishedAt: new Date().toISOString(), cleanup };
    const files = writeResults(RESULTS_DIR, result);
    step(`wrote ${path.relative(projectRoot, files.json)}, ${path.relative(projectRoot, files.markdown)} and ${path.relative(projectRoot, files.latest)}`);
    return result;
  } catch (err) {
    if (!options.keep) await resources.dispose().catch(() => undefined);
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}

/** Which processes are the consumer, Postgres (postmaster and its backends), Kafka, the bench. */
export async function cpuGroupsOf(databaseUrl: string, stateDir: string): Promise<(childPids: number[]) => CpuGroups> {
  const postmaster = (await postmasterPid(databaseUrl)) ?? -1;
  const kafkaPid = runningPid(path.join(stateDir, 'kafka', 'kafka.pid')) ?? -1;
  return (childPids) => ({
    consumer: (p) => childPids.includes(p.pid),
    postgres: (p) => p.pid === postmaster || p.ppid === postmaster,
    kafka: (p) => p.pid === kafkaPid,
    bench: (p) => p.pid === process.pid,
  });
}

async function machineOf(databaseUrl: string, brokers: string[]): Promise<Record<string, string | number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ v: string }>("SELECT split_part(version(), ' on ', 1) AS v");
  await client.end();
  return {
    ...codeVersion(),
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: os.release(),
    postgres: rows[0]?.v ?? 'unknown',
    kafka: brokers.join(','),
  };
}

/** The commit measured, and whether src/ had uncommitted changes (the children run the working tree). */
function codeVersion(): Record<string, string> {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: projectRoot, encoding: 'utf8' }).trim();
  try {
    return { commit: git('rev-parse', '--short', 'HEAD'), srcChanged: git('status', '--porcelain', '--', 'src') ? 'yes' : 'no' };
  } catch {
    return { commit: 'unknown', srcChanged: 'unknown' };
  }
}
