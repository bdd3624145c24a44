/**
 * The ingest benchmark's industry peer: Kafka Connect 3.9.1 (standalone) with the Debezium
 * JDBC sink 3.6.0.Final, draining a preloaded topic into Postgres. A benchmark peer only,
 * never a runtime dependency of the engine.
 *
 * Measured like bench/drain.ts measures ours: start-up (JVM, plugin discovery, joining the
 * group) is timed apart, and the rate runs from the first row seen in the target table to
 * the row that completes it, counting only rows written after the first poll.
 *
 * The target table is created by the connector (`schema.evolution=basic`) from the records'
 * Connect schema, with `eventId` as its primary key (`primary.key.mode=record_value`): the
 * peer runs as a user would deploy it, with no hand-made DDL. Debezium does not quote
 * identifiers by default, so Postgres folds the columns to lower case (`eventid`, ...).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { logTail, onPath, sleep } from '../../infra/process';
import { MissingToolError } from '../../infra/service';
import { addReapedChildren, cpuBetween, reapedTicks, round, RssSampler, snapshotCpu, type CpuGroups, type CpuSplit } from '../lib/procfs';
import { freePort } from '../lib/resources';
import { projectRoot } from '../../src/config';
import { defaultCacheDir, ensureConnectJars } from './connect-jars';

export { ensureConnectJars } from './connect-jars';
export { produceConnectEvents } from './connect-events';

export interface ConnectPeerOptions {
  brokers: string;
  topic: string;
  /** postgres://user[:password]@host:port/database; the table is created in that database. */
  databaseUrl: string;
  /** Rows the table holds when the drain is complete (distinct eventIds for upsert). */
  expectedRecords: number;
  timeoutMs?: number;
  /** Where the worker's log goes (kept after the run). */
  logDir: string;
  /** Debezium's Postgres UNNEST writer: one array-bound INSERT per batch instead of a JDBC batch. */
  unnest?: boolean;
  mode?: 'upsert' | 'insert';
  /** Connector and table name; also names the consumer group (`connect-<name>`). */
  name?: string;
  table?: string;
  tasks?: number;
  batchSize?: number;
  /** JVM heap cap (-Xmx). */
  heap?: string;
  cacheDir?: string;
  /** More CPU groups to report besides the Connect JVM (e.g. Postgres, Kafka), by /proc entry. */
  cpuGroups?: CpuGroups;
  /**
   * Per group, a parent whose exited children also count to it (their CPU, from the parent's
   * cutime/cstime): Postgres's autovacuum and parallel workers start and end between two
   * snapshots, and would otherwise land in "other".
   */
  childrenOf?: Record<string, number>;
  signal?: AbortSignal;
}

export interface ConnectPeerResult {
  /** Rows in the table at the end. */
  records: number;
  /** From the first row seen to the last. */
  seconds: number;
  /** Rows written after the first poll that saw any, per second of drain. */
  eventsPerSecond: number;
  /** When the first row / the last row was seen, in ms after the JVM was spawned. */
  firstRowAt: number;
  lastRowAt: number;
  /** When Connect's REST API first reported the connector's tasks RUNNING, ms after spawn. */
  tasksRunningAt?: number;
  /** The JVM's peak resident set (kernel VmHWM, else sampled every 200 ms). */
  peakRssMb?: number;
  /** CPU the Connect JVM used during the drain window (first row to last). */
  cpuSeconds?: number;
  /** Cores used per group during the drain window, `connect` being the JVM. */
  cpu?: CpuSplit;
  cpuMicrosPerEvent?: Record<string, number>;
  /** Rows per second over each poll interval of at least 1 s (polls are 0.2-2 s apart). */
  timeline: number[];
  /** Time Postgres spent answering our count(*) polls during the drain: the measurement's own cost. */
  pollSeconds: number;
  polls: number;
  groupId: string;
  logFile: string;
  /** clean: the shutdown hook ran (a JVM ends with 143 after SIGTERM), no SIGKILL needed. */
  exit: { code: number | null; signal: string | null; killed: boolean; clean: boolean };
}

// The count is polled every 200 ms when the end is near (or unknown), at most every 2 s while
// it is far: a count(*) over a million rows takes tens of ms of a Postgres backend, and at a
// fixed 200 ms the polls cost a 2-core machine a sixth of a core (measured at 1M rows).
const MIN_POLL_MS = 200;
const MAX_POLL_MS = 2000;
const STATUS_EVERY_MS = 1000;
const STOP_GRACE_MS = 30_000;

export async function runConnectPeer(opts: ConnectPeerOptions): Promise<ConnectPeerResult> {
  const java = onPath('java');
  if (!java) throw new MissingToolError('Java (17+) for the Kafka Connect peer', 'apt-get install openjdk-17-jre-headless', 'run the peer on a machine with Java');
  const jars = await ensureConnectJars(opts.cacheDir ?? defaultCacheDir());
  const name = opts.name ?? `peer-${Date.now().toString(36)}`;
  const table = opts.table ?? 'peer_events';
  const configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'connect-peer-'));
  const restPort = await freePort();
  const files = writeConfigFiles(configDir, opts, { name, table, restPort, pluginPath: jars.pluginPath });
  fs.mkdirSync(opts.logDir, { recursive: true });
  const logFile = path.join(opts.logDir, `${name}.log`);
  const log = fs.openSync(logFile, 'w');

  const spawnedAt = performance.now();
  const child = spawn(
    java,
    [
      `-Xmx${opts.heap ?? '1g'}`,
      '-XX:+UseG1GC',
      '-Djava.awt.headless=true',
      `-Dlog4j.configuration=file:${files.log4j}`,
      '-cp',
      path.join(jars.workerDir, '*'),
      'org.apache.kafka.connect.cli.ConnectStandalone',
      files.worker,
      files.sink,
    ],
    { stdio: ['ignore', log, log] },
  );
  fs.closeSync(log);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    // A JVM that could not be started never emits 'exit'.
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const pid = child.pid ?? -1;
  const rss = new RssSampler(pid);
  const client = new pg.Client({ connectionString: opts.databaseUrl });
  let connected = false;
  try {
    await client.connect();
    connected = true;
    // The polls' count(*) would fork parallel workers each time: keep it in this one backend,
    // where its cost is visible (pollSeconds) and counted to Postgres.
    await client.query('SET max_parallel_workers_per_gather = 0');
    const drain = await watchDrain({ opts, client, child, pid, name, table, restPort, logFile, spawnedAt });
    const memory = rss.stop();
    const exit = await stopChild(child, exited);
    // Recorded relative to the project, so a committed result names no machine's folders.
    return { ...drain, peakRssMb: round(memory.kernelPeakMb ?? memory.sampledPeakMb, 1), groupId: `connect-${name}`, logFile: path.relative(projectRoot, logFile), exit };
  } finally {
    rss.stop();
    await stopChild(child, exited);
    if (connected) await client.end().catch(() => undefined);
    fs.rmSync(configDir, { recursive: true, force: true });
  }
}

interface WatchContext {
  opts: ConnectPeerOptions;
  client: pg.Client;
  child: ChildProcess;
  pid: number;
  name: string;
  table: string;
  restPort: number;
  logFile: string;
  spawnedAt: number;
}

type DrainFigures = Omit<ConnectPeerResult, 'peakRssMb' | 'groupId' | 'logFile' | 'exit'>;

/** Polls the row count until the table is complete; fails fast when the worker or its task dies. */
async function watchDrain(ctx: WatchContext): Promise<DrainFigures> {
  const { opts } = ctx;
  const deadline = ctx.spawnedAt + (opts.timeoutMs ?? 15 * 60_000);
  const groups: CpuGroups = { connect: (p) => p.pid === ctx.pid, ...opts.cpuGroups, bench: (p) => p.pid === process.pid };
  let first: { at: number; rows: number } | undefined;
  let firstCpu = { snapshot: snapshotCpu(), reaped: reapedTicks(opts.childrenOf) };
  let last = { at: ctx.spawnedAt, rows: 0 };
  let lastSecond = last;
  let tasksRunningAt: number | undefined;
  let nextStatusAt = 0;
  let poll = { ms: 0, count: 0 };
  const timeline: number[] = [];
  for (;;) {
    if (opts.signal?.aborted) throw new Error('interrupted');
    if (ctx.child.exitCode !== null || ctx.child.signalCode !== null) {
      throw new Error(`the Connect worker exited (${ctx.child.exitCode ?? ctx.child.signalCode}) before the drain finished.${logTail(ctx.logFile, 30)}`);
    }
    const now = performance.now();
    if (now > deadline) throw new Error(`the Connect peer did not write ${opts.expectedRecords} rows within ${opts.timeoutMs ?? 900_000} ms (saw ${last.rows}); see ${ctx.logFile}`);
    if (now >= nextStatusAt) {
      nextStatusAt = now + STATUS_EVERY_MS;
      const state = await connectorState(ctx.restPort, ctx.name);
      if (state.failed) throw new Error(`the sink task failed: ${state.failed}\n(full log: ${ctx.logFile})`);
      if (state.running && tasksRunningAt === undefined) tasksRunningAt = Math.round(performance.now() - ctx.spawnedAt);
    }
    const asked = performance.now();
    const rows = await countRows(ctx.client, ctx.table);
    const at = performance.now();
    poll = { ms: poll.ms + at - asked, count: poll.count + 1 };
    if (!first && rows > 0) {
      first = { at, rows };
      firstCpu = { snapshot: snapshotCpu(), reaped: reapedTicks(opts.childrenOf) };
      lastSecond = first;
      poll = { ms: 0, count: 0 };
    }
    last = { at, rows };
    if (first && at - lastSecond.at >= 1000) {
      timeline.push(Math.round(((rows - lastSecond.rows) * 1000) / (at - lastSecond.at)));
      lastSecond = last;
    }
    if (rows >= opts.expectedRecords) break;
    await sleep(nextPollMs(first, last, opts.expectedRecords));
  }
  const cpu = cpuBetween(firstCpu.snapshot, snapshotCpu(), groups, os.availableParallelism());
  addReapedChildren(cpu, firstCpu.reaped, reapedTicks(opts.childrenOf));
  const start = first ?? last;
  const seconds = (last.at - start.at) / 1000;
  const written = last.rows - start.rows;
  const cpuMicrosPerEvent = written > 0 ? Object.fromEntries(Object.entries(cpu.cores).map(([g, cores]) => [g, round((cores * seconds * 1e6) / written, 1)])) : undefined;
  return {
    records: last.rows,
    seconds: round(seconds, 3),
    eventsPerSecond: seconds > 0 ? Math.round(written / seconds) : NaN,
    firstRowAt: Math.round(start.at - ctx.spawnedAt),
    lastRowAt: Math.round(last.at - ctx.spawnedAt),
    tasksRunningAt,
    cpuSeconds: round((cpu.cores.connect ?? 0) * seconds, 2),
    cpu,
    cpuMicrosPerEvent,
    timeline,
    pollSeconds: round(poll.ms / 1000, 2),
    polls: poll.count,
  };
}

/** Half the expected time to completion at the rate so far, within [MIN_POLL_MS, MAX_POLL_MS]. */
function nextPollMs(first: { at: number; rows: number } | undefined, last: { at: number; rows: number }, expected: number): number {
  if (!first || last.rows <= first.rows) return MIN_POLL_MS;
  const rowsPerMs = (last.rows - first.rows) / (last.at - first.at);
  const etaMs = (expected - last.rows) / rowsPerMs;
  return Math.min(MAX_POLL_MS, Math.max(MIN_POLL_MS, etaMs / 2));
}

/** Exact row count (in a session without parallel workers). */
async function countRows(client: pg.Client, table: string): Promise<number> {
  try {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${pg.escapeIdentifier(table)}`);
    return Number(rows[0]?.n ?? 0);
  } catch (err) {
    // The connector creates the table with its first batch.
    if ((err as { code?: string }).code === '42P01') return 0;
    throw err;
  }
}

/** The connector's state from Connect's REST API; unreachable while the worker starts. */
async function connectorState(port: number, name: string): Promise<{ running: boolean; failed?: string }> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/connectors/${encodeURIComponent(name)}/status`, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) return { running: false };
    const status = (await response.json()) as { connector: { state: string; trace?: string }; tasks: { id: number; state: string; trace?: string }[] };
    const failed = [status.connector, ...status.tasks].find((s) => s.state === 'FAILED');
    if (failed) return { running: false, failed: causes(failed.trace ?? 'no trace') };
    return { running: status.tasks.length > 0 && status.tasks.every((t) => t.state === 'RUNNING') };
  } catch {
    return { running: false };
  }
}

/** A Java stack trace cut to its message and causes: the root cause is at the bottom, under framework frames. */
function causes(trace: string): string {
  const lines = trace.split('\n');
  return [lines[0] ?? '', ...lines.filter((l) => l.startsWith('Caused by:'))].join('\n');
}

/** SIGTERM runs ConnectStandalone's shutdown hook (stop the task, close the consumer); SIGKILL after a grace period. */
async function stopChild(child: ChildProcess, exited: Promise<{ code: number | null; signal: string | null }>) {
  let killed = false;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
  const { code, signal } = await exited;
  return { code, signal, killed, clean: !killed && (code === 0 || code === 143 || signal === 'SIGTERM') };
}

function writeConfigFiles(
  dir: string,
  opts: ConnectPeerOptions,
  p: { name: string; table: string; restPort: number; pluginPath: string },
): { worker: string; sink: string; log4j: string } {
  const db = new URL(opts.databaseUrl);
  const batchSize = opts.batchSize ?? 5000;
  const worker = {
    'bootstrap.servers': opts.brokers,
    // Keys are huntIds (plain strings); values carry their Connect schema.
    'key.converter': 'org.apache.kafka.connect.storage.StringConverter',
    'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
    'value.converter.schemas.enable': 'true',
    'offset.storage.file.filename': path.join(dir, 'connect.offsets'),
    'plugin.path': p.pluginPath,
    // Both the sink and the worker's converters ship ServiceLoader manifests: no classpath scan at start-up.
    'plugin.discovery': 'service_load',
    listeners: `http://127.0.0.1:${p.restPort}`,
    // Lets the connector raise its consumer's max.poll.records to match batch.size.
    'connector.client.config.override.policy': 'All',
  };
  const sink = {
    name: p.name,
    'connector.class': 'io.debezium.connector.jdbc.JdbcSinkConnector',
    'tasks.max': String(opts.tasks ?? 1),
    topics: opts.topic,
    'connection.url': `jdbc:postgresql://${db.hostname}:${db.port || '5432'}${db.pathname}`,
    'connection.username': decodeURIComponent(db.username),
    'connection.password': decodeURIComponent(db.password),
    'insert.mode': opts.mode ?? 'upsert',
    'primary.key.mode': 'record_value',
    'primary.key.fields': 'eventId',
    'schema.evolution': 'basic',
    'collection.name.format': p.table,
    'batch.size': String(batchSize),
    'dialect.postgres.unnest.insert.enabled': String(opts.unnest ?? true),
    // Keep only the latest record per key within a batch. Without it, a duplicate eventId in
    // the same batch fails the UNNEST upsert ("ON CONFLICT DO UPDATE command cannot affect
    // row a second time") and the task dies. Note: latest wins, where our ingest keeps the first.
    'use.reduction.buffer': 'true',
    'consumer.override.max.poll.records': String(batchSize),
    'consumer.override.auto.offset.reset': 'earliest',
  };
  const log4j = [
    'log4j.rootLogger=INFO, stdout',
    'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
    'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
    // Client and framework chatter (config dumps, metadata) drowns the connector's own lines.
    'log4j.logger.org.apache.kafka.clients=WARN',
    'log4j.logger.org.apache.kafka.common=WARN',
    'log4j.logger.org.hibernate=WARN',
    'log4j.logger.org.reflections=ERROR',
  ];
  const files = { worker: path.join(dir, 'worker.properties'), sink: path.join(dir, 'sink.properties'), log4j: path.join(dir, 'log4j.properties') };
  fs.writeFileSync(files.worker, properties(worker));
  fs.writeFileSync(files.sink, properties(sink));
  fs.writeFileSync(files.log4j, `${log4j.join('\n')}\n`);
  return files;
}

/** Java .properties text; backslashes escaped so Windows-style paths or passwords survive. */
function properties(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}=${v.replace(/\\/g, '\\\\')}`)
    .join('\n')
    .concat('\n');
}
