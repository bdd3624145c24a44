/**
 * `npx tsx bench/peer/run-peer.ts --events 300000`: one drain by the Kafka Connect peer
 * (Debezium JDBC sink) on its own database and topic, both dropped at the end (also on
 * Ctrl-C). Prints the rate and where the CPU went; `--json` adds the whole result.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Kafka, logLevel } from 'kafkajs';
import { loadConfig } from '../../src/config';
import { postmasterPid } from '../lib/machine';
import { backgroundLoad, type CpuGroups } from '../lib/procfs';
import { runningPid } from '../../infra/process';
import { databaseUrlFor, withAdmin } from '../lib/resources';
import { ensureConnectJars, produceConnectEvents, runConnectPeer } from './connect-peer';

const PARTITIONS = 4;

interface PeerOptions {
  events: number;
  unnest: boolean;
  mode: 'upsert' | 'insert';
  tasks: number;
  batchSize: number;
  heap: string;
  hunts: number;
  players: number;
  duplicates: number;
  invalid: number;
  seed: number;
  timeoutSeconds: number;
  logDir?: string;
  keep: boolean;
  json: boolean;
}

const number = (name: string, min: number, max = Infinity) => (raw: string) => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) throw new InvalidArgumentError(`${name} must be a number from ${min} to ${max}, got '${raw}'`);
  return value;
};

const program = new Command('run-peer')
  .description('drain a preloaded topic into Postgres with Kafka Connect 3.9.1 + the Debezium JDBC sink (benchmark peer)')
  .addOption(new Option('--events <n>', 'records in the preloaded topic').argParser(number('--events', 1000)).default(300_000))
  .option('--no-unnest', "use the sink's JDBC batch writer instead of the Postgres UNNEST insert")
  .addOption(new Option('--mode <mode>', 'insert.mode of the sink').choices(['upsert', 'insert']).default('upsert'))
  .addOption(new Option('--tasks <n>', 'tasks.max (the topic has 4 partitions)').argParser(number('--tasks', 1, PARTITIONS)).default(1))
  .addOption(new Option('--batch-size <n>', 'batch.size and the consumer max.poll.records').argParser(number('--batch-size', 1)).default(5000))
  .option('--heap <size>', 'JVM -Xmx of the Connect worker', '1g')
  .addOption(new Option('--hunts <n>', 'hunts in the generated traffic').argParser(number('--hunts', 1)).default(100))
  .addOption(new Option('--players <n>', 'players per hunt').argParser(number('--players', 1)).default(500))
  .addOption(new Option('--duplicates <fraction>', 'records that resend an earlier eventId').argParser(number('--duplicates', 0, 0.5)).default(0.01))
  .addOption(new Option('--invalid <fraction>', 'invalid records the generator draws (skipped: see README)').argParser(number('--invalid', 0, 0.5)).default(0.001))
  .addOption(new Option('--seed <n>', 'seed of the traffic generator').argParser(number('--seed', 0)).default(42))
  .addOption(new Option('--timeout-seconds <s>', 'give up on the drain after this long').argParser(number('--timeout-seconds', 10)).default(900))
  .option('--log-dir <dir>', "where the Connect worker's log goes (default: a folder under the OS temp dir)")
  .option('--keep', 'keep the database and topic for inspection', false)
  .option('--json', 'also print the whole result as JSON', false)
  .action(async (options: PeerOptions) => {
    let code = 1;
    try {
      code = await runPeer(options);
    } catch (err) {
      console.error(`run-peer: ${(err as Error).message}`);
    }
    // kafkajs and pg leave sockets that close lazily; everything is printed, so leave now.
    process.exit(code);
  });

const log = (message: string) => console.log(`[peer ${new Date().toISOString().slice(11, 19)}] ${message}`);

async function runPeer(options: PeerOptions): Promise<number> {
  if (options.mode === 'insert' && options.duplicates > 0) {
    throw new InvalidArgumentError('--mode insert stops the sink at the first duplicate eventId (primary key violation); pass --duplicates 0 with it');
  }
  const config = loadConfig();
  const runId = `${Date.now().toString(36)}${crypto.randomBytes(2).toString('hex')}`;
  const database = `bench_peer_${runId}`;
  const topic = `bench.peer.${runId}`;
  const name = `peer-${runId}`;
  const logDir = options.logDir ?? path.join(os.tmpdir(), `connect-peer-${runId}`);
  const kafka = new Kafka({ clientId: 'hunt-bench-peer', brokers: config.kafka.brokers, logLevel: logLevel.WARN });
  const abort = new AbortController();
  const onSignal = () => {
    log('interrupted: stopping the worker, then dropping what this run created');
    abort.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const jarsStarted = performance.now();
  const jars = await ensureConnectJars();
  log(jars.fetchedSeconds === undefined ? 'jars cached' : `fetched the jars from Maven Central in ${jars.fetchedSeconds.toFixed(1)} s`);
  const admin = kafka.admin();
  await admin.connect();
  let created = { database: false, topic: false };
  try {
    const before = await backgroundLoad();
    log(`background load: ${before.machineBusyCores} of ${before.machineCores} cores busy, loadavg ${loadavg()}`);

    await withAdmin(config.databaseUrl, (c) => c.query(`CREATE DATABASE ${database}`));
    created = { ...created, database: true };
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
    created = { ...created, topic: true };
    const preload = await produceConnectEvents(kafka, {
      topic,
      events: options.events,
      hunts: options.hunts,
      playersPerHunt: options.players,
      duplicateFraction: options.duplicates,
      invalidFraction: options.invalid,
      seed: options.seed,
    });
    log(
      `preloaded ${preload.sent} records (${preload.kinds.duplicate} duplicates, ${preload.kinds.invalidSkipped} invalid skipped) in ${preload.seconds.toFixed(1)} s, ` +
        `${Math.round(preload.bytes / preload.sent)} bytes each of which ${preload.schemaBytes} envelope`,
    );

    abort.signal.throwIfAborted();
    const databaseUrl = databaseUrlFor(config.databaseUrl, database);
    log(`draining with Connect (${options.mode}, unnest ${options.unnest ? 'on' : 'off'}, tasks ${options.tasks}); log: ${path.join(logDir, `${name}.log`)}`);
    const loadBefore = loadavg();
    const result = await runConnectPeer({
      brokers: config.kafka.brokers.join(','),
      topic,
      databaseUrl,
      expectedRecords: preload.distinctEventIds,
      timeoutMs: options.timeoutSeconds * 1000,
      logDir,
      unnest: options.unnest,
      mode: options.mode,
      name,
      tasks: options.tasks,
      batchSize: options.batchSize,
      heap: options.heap,
      ...(await serverCpuGroups(config.databaseUrl, config.stack.stateDir)),
      signal: abort.signal,
    });
    const cpu = result.cpu;
    log(`${result.eventsPerSecond.toLocaleString('en-US')} events/s: ${result.records} rows, drain ${result.seconds.toFixed(2)} s after ${(result.firstRowAt / 1000).toFixed(1)} s of start-up`);
    if (cpu) {
      const cores = Object.entries(cpu.cores).map(([g, c]) => `${g} ${c}`).join(', ');
      const perEvent = Object.entries(result.cpuMicrosPerEvent ?? {}).map(([g, us]) => `${g} ${us}`).join(', ');
      log(`cores during the drain: ${cores} (machine ${cpu.machineBusyCores} of ${cpu.machineCores}); CPU µs per event: ${perEvent}`);
      log(`outside the benchmark: ${cpu.otherTop.filter((o) => o.cores > 0).map((o) => `${o.comm} ${o.cores}`).join(', ') || 'nothing'}; loadavg ${loadBefore} before, ${loadavg()} after`);
    }
    log(`Connect JVM: peak RSS ${result.peakRssMb} MB, ${result.cpuSeconds} CPU s in the drain; ${result.polls} count(*) polls took ${result.pollSeconds} s of Postgres time; ${result.exit.clean ? 'stopped cleanly' : `stop: exit ${result.exit.code ?? result.exit.signal}${result.exit.killed ? ', killed after the grace period' : ''}`}`);
    if (options.json) {
      const command = ['npx tsx bench/peer/run-peer.ts', ...process.argv.slice(2)].join(' ');
      console.log(JSON.stringify({ command, options, background: before, jarsSeconds: (performance.now() - jarsStarted) / 1000, preload, result }, null, 2));
    }
    return 0;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (options.keep) {
      log(`kept (--keep): database ${database}, topic ${topic}, group connect-${name}`);
    } else {
      await cleanUp(config.databaseUrl, admin, created, { database, topic, group: `connect-${name}` });
    }
    await admin.disconnect();
  }
}

/** Drops the database and deletes the topic and the sink's consumer group; reports, never throws. */
async function cleanUp(serverUrl: string, admin: ReturnType<Kafka['admin']>, created: { database: boolean; topic: boolean }, names: { database: string; topic: string; group: string }) {
  const problems: string[] = [];
  if (created.database) {
    await withAdmin(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${names.database} WITH (FORCE)`)).catch((err: Error) => problems.push(`drop database: ${err.message}`));
  }
  if (created.topic) await admin.deleteTopics({ topics: [names.topic] }).catch((err: Error) => problems.push(`delete topic: ${err.message}`));
  // A group that never committed does not exist; that is not a problem.
  await admin.deleteGroups([names.group]).catch(() => undefined);
  log(problems.length === 0 ? `dropped ${names.database} and ${names.topic}` : `clean-up problems: ${problems.join('; ')}`);
}

/**
 * Postgres (the postmaster and its children) and the embedded Kafka broker, so the report
 * says which side the CPU went to. Both are found only when they run on this machine.
 */
async function serverCpuGroups(databaseUrl: string, stateDir: string): Promise<{ cpuGroups: CpuGroups; childrenOf: Record<string, number> }> {
  const groups: CpuGroups = {};
  const postmaster = await postmasterPid(databaseUrlFor(databaseUrl, 'postgres'));
  if (postmaster !== undefined) groups.postgres = (p) => p.pid === postmaster || p.ppid === postmaster;
  const kafkaPid = runningPid(path.join(stateDir, 'kafka', 'kafka.pid'));
  if (kafkaPid !== undefined) groups.kafka = (p) => p.pid === kafkaPid;
  // Autovacuum and parallel workers come and go within a drain; their CPU is the postmaster's cutime.
  return { cpuGroups: groups, childrenOf: postmaster === undefined ? {} : { postgres: postmaster } };
}

function loadavg(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

await program.parseAsync(process.argv);
