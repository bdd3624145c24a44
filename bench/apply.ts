/**
 * `npm run bench -- apply`: the hot path's per-event cost without Kafka, for quick
 * experiments on the store and the classifier. Records as the ingest benchmark's backlog
 * (the same seeded traffic) are classified, then committed in micro-batches through the real
 * commitMicroBatch on fresh databases, one transaction at a time. Reported per event: the
 * classifier's CPU, the client's CPU while committing (statement building, pg), and the
 * CPU of every Postgres process (backends, WAL writer, checkpointer).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, projectRoot } from '../src/config';
import { seededRandom, TrafficGenerator } from '../src/demo/traffic';
import { classifySlice, type ClassifiedSlice, type SourceRecord } from '../src/pipeline/classify';
import { commitMicroBatch } from '../src/pipeline/commit';
import { rowCount } from '../src/store/hot-path/event-rows';
import { createKafka } from '../src/pipeline/kafka-client';
import { createLogger } from '../src/log';
import { createPool } from '../src/store/pool';
import { postmasterPid } from './lib/machine';
import { cpuBetween, snapshotCpu, type CpuGroups } from './lib/procfs';
import { BenchResources } from './lib/resources';
import { step } from './lib/step';

export interface ApplyBenchOptions {
  events: number;
  batch: number;
  rounds: number;
  seed: number;
  /** SQL run on each fresh database before the run (schema experiments). */
  prepare?: string;
  /** Write each micro-batch's statements at once (pg's pipeline mode), as `hunt ingest` does. */
  pipeline: boolean;
}

export async function runApplyBench(options: ApplyBenchOptions, command: string) {
  const config = loadConfig();
  const resources = new BenchResources(config.databaseUrl, createKafka(config, createLogger({ logLevel: 'warn' }, 'bench'), 'hunt-bench'));
  const records = generate(options);
  const classifyStarted = process.cpuUsage();
  const slices: ClassifiedSlice[] = [];
  const now = new Date();
  for (let i = 0; i < records.length; i += options.batch) slices.push(classifySlice('bench', i % 4, records.slice(i, i + options.batch), now));
  const classifyUs = cpuUs(process.cpuUsage(classifyStarted)) / records.length;
  step(`classified ${records.length} records: ${classifyUs.toFixed(2)} µs/record of CPU`);
  const rounds = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      const url = await resources.createDatabase(`apply${round}`);
      const pool = createPool({ databaseUrl: url }, 1, undefined, { pipeline: options.pipeline });
      if (options.prepare) await pool.query(options.prepare);
      const groups = await postgresGroup(url);
      const client = process.cpuUsage();
      const from = snapshotCpu();
      const started = performance.now();
      let offset = 0;
      for (const slice of slices) {
        offset += rowCount(slice.rows) + slice.rejected.length;
        const batch = { rows: slice.rows, origins: slice.origins, rejected: slice.rejected, offsets: [{ topic: 'bench', partition: 0, nextOffset: BigInt(offset) }] };
        await commitMicroBatch(pool, 'bench', batch);
      }
      const seconds = (performance.now() - started) / 1000;
      const split = cpuBetween(from, snapshotCpu(), groups, os.availableParallelism());
      const clientUs = cpuUs(process.cpuUsage(client)) / records.length;
      const postgresUs = ((split.cores.postgres ?? 0) * split.seconds * 1e6) / records.length;
      rounds.push({ seconds, eventsPerSecond: Math.round(records.length / seconds), clientUsPerEvent: round2(clientUs), postgresUsPerEvent: round2(postgresUs) });
      step(`round ${round + 1}: ${Math.round(records.length / seconds)} events/s one transaction at a time; client ${clientUs.toFixed(1)} µs/event, Postgres ${postgresUs.toFixed(1)} µs/event`);
      await pool.end();
    }
  } finally {
    await resources.dispose();
  }
  const best = [...rounds].sort((a, b) => a.postgresUsPerEvent + a.clientUsPerEvent - (b.postgresUsPerEvent + b.clientUsPerEvent))[0];
  const result = { benchmark: 'apply', command, startedAt: now.toISOString(), options, classifyUsPerRecord: round2(classifyUs), rounds, best };
  const file = path.join(projectRoot, 'bench/results', `apply-${now.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  step(`wrote ${path.relative(projectRoot, file)}`);
  return result;
}

/** The ingest benchmark's traffic mix, as Kafka-like records. */
function generate(options: ApplyBenchOptions): SourceRecord[] {
  let tick = Date.now() - 2 * options.events - 60_000;
  const generator = new TrafficGenerator({
    hunts: 100,
    playersPerHunt: 500,
    duplicateFraction: 0.01,
    invalidFraction: 0.001,
    random: seededRandom(options.seed),
    now: () => tick++,
  });
  return Array.from({ length: options.events }, (_, i) => {
    const r = generator.next();
    return { offset: String(i), key: Buffer.from(r.key), value: r.value, timestamp: String(Date.now()) };
  });
}

/** Every process of the Postgres cluster that serves `url` (postmaster and children). */
async function postgresGroup(url: string): Promise<CpuGroups> {
  const postmaster = (await postmasterPid(url)) ?? -1;
  return { postgres: (p) => p.pid === postmaster || p.ppid === postmaster };
}

const cpuUs = (u: NodeJS.CpuUsage) => u.user + u.system;
const round2 = (n: number) => Math.round(n * 100) / 100;
