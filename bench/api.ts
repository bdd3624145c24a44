/**
 * `npm run bench -- api`: does reading the leaderboard slow the hot path down? The real
 * `hunt ingest` drains a preloaded backlog into a database holding a 100,000-player hunt,
 * once quietly and once while 200 concurrent readers read that hunt's leaderboard from its
 * read API as fast as it answers. Reported: reads/s and read latency, and the drain rate and
 * transaction p99 under readers against the quiet drain, as ratios (goal: >= 80% of the
 * quiet rate). Phases run quiet, readers, readers, quiet by default, so a drift of the
 * machine's load over the run weighs on both sides alike.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig, projectRoot } from '../src/config';
import { createKafka } from '../src/pipeline/kafka-client';
import { createLogger } from '../src/log';
import { renderApiMarkdown, type ApiBenchResult, type ApiPhase } from './api-report';
import { drainWithIngest } from './drain';
import { cpuGroupsOf } from './ingest';
import { startReaderProcess, type ReaderStats, type RunningReaders } from './lib/leaderboard-readers';
import { machineOf } from './lib/machine';
import { histogramQuantile, parseHistogram } from './lib/prom';
import { backgroundLoad, round } from './lib/procfs';
import { BenchResources, topicEndOffsets } from './lib/resources';
import { resultFilesOf, writeResultFiles } from './lib/results-files';
import { step } from './lib/step';
import { preloadBacklog } from './preload';

export interface ApiBenchOptions {
  events: number;
  players: number;
  readers: number;
  limit: number;
  thinkMs: number;
  /** CPU priority of the reader process (0: the same as the server's). */
  readersNice: number;
  rounds: number;
  hunts: number;
  seed: number;
  keep: boolean;
  ingestEnv: Record<string, string>;
}

const PARTITIONS = 4;
const HUNT = 'hunt-0';
const RESULTS_DIR = path.join(projectRoot, 'bench/results');
const GOAL_DRAIN_RATIO = 0.8;

export async function runApiBench(options: ApiBenchOptions, command: string): Promise<ApiBenchResult> {
  const config = loadConfig();
  const kafka = createKafka(config, createLogger({ logLevel: 'warn' }, 'bench'), 'hunt-bench');
  const resources = new BenchResources(config.databaseUrl, kafka);
  const rawDir = path.join(RESULTS_DIR, 'raw', `api-${resources.runId}`);
  fs.mkdirSync(rawDir, { recursive: true });
  const onSignal = () => {
    step('interrupted: dropping what this run created');
    void resources.dispose().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  const startedAt = new Date().toISOString();
  const serviceGroups = await cpuGroupsOf(config.databaseUrl, config.stack.stateDir);
  let readerPid = -1;
  const cpuGroups = (childPids: number[]) => ({ ...serviceGroups(childPids), readers: (p: { pid: number }) => p.pid === readerPid });
  const machineCores = os.availableParallelism();
  // Other people's work on a shared machine skews every figure; record how much there was.
  const background = await backgroundLoad();
  step(`background load before the run: ${background.machineBusyCores} of ${machineCores} cores busy`);

  try {
    const topic = await resources.createTopic('backlog', PARTITIONS);
    step(`run ${resources.runId}: preloading ${options.events.toLocaleString('en-US')} records over ${options.hunts} hunts`);
    const preload = await preloadBacklog(kafka, {
      topic,
      events: options.events,
      hunts: options.hunts,
      playersPerHunt: 500,
      duplicateFraction: 0.01,
      invalidFraction: 0.001,
      seed: options.seed,
    });
    const { total: records } = await topicEndOffsets(kafka, topic);
    step(`preloaded ${records} records in ${preload.seconds.toFixed(1)} s`);

    const order: ('quiet' | 'readers')[] = [];
    for (let r = 0; r < options.rounds; r++) order.push(...(r % 2 === 0 ? (['quiet', 'readers'] as const) : (['readers', 'quiet'] as const)));
    const phases: ApiPhase[] = [];
    for (const [i, kind] of order.entries()) {
      const label = `${kind}${i}`;
      const databaseUrl = await resources.createDatabase(label);
      await seedBigHunt(databaseUrl, options.players);
      let readers: RunningReaders | undefined;
      let reads: ReaderStats | undefined;
      let serverReadMs: ApiPhase['serverReadMs'];
      let apiUrl = '';
      const url = (apiUrl: string) => `${apiUrl}/hunts/${HUNT}/leaderboard?limit=${options.limit}`;
      const drain = await drainWithIngest({
        databaseUrl,
        topic,
        groupId: resources.groupId(label),
        records,
        rawDir,
        label,
        cpuGroups,
        machineCores,
        env: options.ingestEnv,
        apiLoad:
          kind === 'readers'
            ? {
                start: (at) => {
                  apiUrl = at;
                  readers = startReaderProcess({ url: url(at), readers: options.readers, thinkMs: options.thinkMs, nice: options.readersNice });
                  readerPid = readers.pid ?? -1;
                },
                stop: async () => {
                  reads = await readers?.stop();
                  serverReadMs = await serverLeaderboardLatency(apiUrl);
                },
              }
            : undefined,
      });
      phases.push({ kind, label, drain, reads, serverReadMs });
      step(
        `${label}: drain ${drain.eventsPerSecond} events/s, transaction p99 ${drain.transactionMs.p99} ms` +
          (reads ? `; ${reads.readsPerSecond} reads/s, read p99 ${reads.latencyMs.p99} ms (in the server ${serverReadMs?.p99} ms), non-200 ${JSON.stringify(reads.statuses)}, failures ${reads.failures}` : ''),
      );
    }

    const mean = (kind: 'quiet' | 'readers', pick: (p: ApiPhase) => number | undefined) => {
      const values = phases.filter((p) => p.kind === kind).map(pick).filter((v): v is number => v !== undefined);
      return values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN;
    };
    const quietRate = mean('quiet', (p) => p.drain.eventsPerSecond);
    const loadedRate = mean('readers', (p) => p.drain.eventsPerSecond);
    // Events per core-second the ingest process and Postgres used: what the readers cost the
    // hot path's own work, whatever else the shared machine was doing meanwhile.
    const perCore = (p: ApiPhase) => p.drain.eventsPerSecond / Math.max(0.01, (p.drain.cpu.cores.consumer ?? 0) + (p.drain.cpu.cores.postgres ?? 0));
    const quietPerCore = mean('quiet', perCore);
    const loadedPerCore = mean('readers', perCore);
    const quietP99 = mean('quiet', (p) => p.drain.transactionMs.p99);
    const loadedP99 = mean('readers', (p) => p.drain.transactionMs.p99);
    const summary = {
      quietDrainEventsPerSecond: Math.round(quietRate),
      loadedDrainEventsPerSecond: Math.round(loadedRate),
      drainRatio: round(loadedRate / quietRate, 3),
      quietEventsPerCoreSecond: Math.round(quietPerCore),
      loadedEventsPerCoreSecond: Math.round(loadedPerCore),
      perCoreRatio: round(loadedPerCore / quietPerCore, 3),
      otherCores: { quiet: round(mean('quiet', (p) => p.drain.cpu.cores.other), 2), readers: round(mean('readers', (p) => p.drain.cpu.cores.other), 2) },
      quietTransactionP99Ms: round(quietP99, 1),
      loadedTransactionP99Ms: round(loadedP99, 1),
      transactionP99Ratio: round(loadedP99 / quietP99, 2),
      readsPerSecond: Math.round(mean('readers', (p) => p.reads?.readsPerSecond)),
      readP50Ms: round(mean('readers', (p) => p.reads?.latencyMs.p50), 1),
      readP99Ms: round(mean('readers', (p) => p.reads?.latencyMs.p99), 1),
      serverReadP99Ms: round(mean('readers', (p) => p.serverReadMs?.p99), 2),
      goalDrainRatio: GOAL_DRAIN_RATIO,
      met: loadedRate / quietRate >= GOAL_DRAIN_RATIO,
    };
    const cleanup = options.keep ? ['kept (--keep): databases and topics of this run were not dropped'] : await resources.dispose();
    const result: ApiBenchResult = {
      benchmark: 'api',
      runId: resources.runId,
      startedAt,
      finishedAt: new Date().toISOString(),
      command,
      machine: await machineOf(config.databaseUrl, { kafka: config.kafka.brokers.join(',') }),
      background,
      setup: { ...options, records, hunt: HUNT, partitions: PARTITIONS, apiDbPoolSize: config.api.dbPoolSize, apiStatementTimeoutMs: config.api.statementTimeoutMs },
      preload,
      phases,
      summary,
      cleanup,
    };
    const files = resultFilesOf(RESULTS_DIR, 'api', startedAt);
    writeResultFiles(files, result, renderApiMarkdown(result, path.basename(files.json)));
    step(`wrote ${path.relative(projectRoot, files.json)}, ${path.relative(projectRoot, files.markdown)} and ${path.relative(projectRoot, files.latest)}`);
    return result;
  } catch (err) {
    if (!options.keep) await resources.dispose().catch(() => undefined);
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}

/** Leaderboard request time inside the server (hunt_api_request_seconds), in ms. */
async function serverLeaderboardLatency(apiUrl: string): Promise<ApiPhase['serverReadMs']> {
  const text = await fetch(`${apiUrl}/metrics`).then((r) => r.text(), () => '');
  const lines = text.split('\n').filter((line) => !line.startsWith('hunt_api_request_seconds') || line.includes('route="leaderboard"'));
  const histogram = parseHistogram(lines.join('\n'), 'hunt_api_request_seconds');
  const ms = (q: number) => {
    const v = histogramQuantile(histogram, q)?.value;
    return v === undefined ? undefined : round(v * 1000, 2);
  };
  return { p50: ms(0.5), p99: ms(0.99), count: histogram.count };
}

/**
 * The hunt the readers read: `players` rows of player_scores with spread-out scores, written
 * directly (its events would only make the preload longer; the read path sees the same rows).
 * The backlog's own traffic to this hunt then updates some of them while they are read.
 */
async function seedBigHunt(databaseUrl: string, players: number): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`INSERT INTO hunts (hunt_id, events_applied, as_of) VALUES ($1, $2, now())`, [HUNT, players]);
    await client.query(
      `INSERT INTO player_scores (hunt_id, player_id, score, clues_found, treasures_claimed, display_name, active)
       SELECT $1, 'seeded-' || g, (abs(hashint4(g)) % 50000)::bigint, g % 20, g % 3, 'Player ' || g, g % 10 <> 0
         FROM generate_series(1, $2) AS g`,
      [HUNT, players],
    );
    await client.query('ANALYZE hunts, player_scores');
  } finally {
    await client.end();
  }
}
