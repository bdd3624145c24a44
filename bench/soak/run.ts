/**
 * `npm run soak -- --minutes N`: the pipeline under steady traffic (with duplicates, late
 * claims and hostile records) while faults come one after another, on a private embedded
 * stack; then a final reconcile and an independent check that nothing was lost, counted
 * twice or left out of quarantine and the DLQ. Writes bench/results/soak-*.md with timelines.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { projectRoot } from '../../src/config';
import { seededRandom, TrafficGenerator } from '../../src/demo/traffic';
import type { HuntEvent } from '../../src/events/schema';
import { createKafka } from '../../src/pipeline/kafka-client';
import { createLogger } from '../../src/log';
import { createPool } from '../../src/store/pool';
import { connectClient } from '../../src/temporal/client';
import { BenchResources } from '../lib/resources';
import { runChaos } from './chaos';
import { startMonitor } from './monitor';
import { SoakProcess } from './processes';
import { verdictsOf, writeSoakReport, type SoakResult } from './report';
import { SoakStack } from './stack';
import { SoakTraffic } from './traffic';
import { checkCounts, checkFinal, dlqPositions, expectedFromTopic } from './verify';

const RESULTS_DIR = path.join(projectRoot, 'bench/results');
const log = (message: string) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${message}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const number = (name: string, min: number, max: number) => (raw: string) => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) throw new InvalidArgumentError(`${name} must be a number from ${min} to ${max}`);
  return value;
};

interface SoakOptions {
  minutes: number;
  rate: number;
  hostileFraction: number;
  keepStack: boolean;
}

/** Set on SIGINT/SIGTERM: the supervisor then restarts nothing. */
let interrupted = false;

async function soak(options: SoakOptions, command: string): Promise<void> {
  const startedAt = new Date().toISOString();
  process.on('exit', () => SoakProcess.killAll());
  const stack = new SoakStack();
  // Interrupted: stop the children (the exit hook) and, unless asked to keep it, the private stack.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      log(`${signal}: stopping${options.keepStack ? '' : ' the soak stack'}`);
      SoakProcess.killAll();
      const down = options.keepStack ? Promise.resolve() : withTimeout(stack.down(), 60_000);
      void down.catch(() => undefined).finally(() => process.exit(130));
    });
  }
  log('bringing up the soak stack (its own state folder and ports)');
  await stack.up();
  const config = stack.config;
  // The soak's own Kafka client complains through every fault; its retries are counted instead.
  const logger = createLogger({ logLevel: 'silent' }, 'soak');
  const kafka = createKafka(config, logger, 'hunt-soak');
  const resources = new BenchResources(config.databaseUrl, kafka);
  const databaseUrl = await resources.createDatabase('soak');
  const topic = await resources.createTopic('soak', 4);
  const dlqTopic = `${topic}.dlq`;
  const groupId = resources.groupId('soak');
  const taskQueue = `soak-${resources.runId}`;
  const rawDir = path.join(RESULTS_DIR, 'raw', `soak-${resources.runId}`);
  const pool = createPool({ databaseUrl }, 4);
  const { client, close: closeClient } = await connectClient(config);
  const admin = kafka.admin();
  await admin.connect();

  // Children get no heap flag from us: they run as an operator would run them.
  const common = { DATABASE_URL: databaseUrl, NODE_OPTIONS: '' };
  const ingestEnv = (port: number) => ({ ...common, KAFKA_TOPIC_EVENTS: topic, KAFKA_TOPIC_DLQ: dlqTopic, INGEST_GROUP_ID: groupId, API_PORT: String(port), INGEST_SESSION_TIMEOUT_MS: '10000' });
  const ingests = [
    new SoakProcess('ingest-a', 'ingest', ingestEnv(18801), path.join(rawDir, 'ingest-a.log')),
    new SoakProcess('ingest-b', 'ingest', ingestEnv(18802), path.join(rawDir, 'ingest-b.log')),
  ];
  const worker = new SoakProcess('worker', 'worker', { ...common, TEMPORAL_TASK_QUEUE: taskQueue }, path.join(rawDir, 'worker.log'));
  const processes = [...ingests, worker];
  for (const p of processes) p.start();
  // A supervisor, as in production: a process that exits by itself is started again (and counted).
  const unplanned: Record<string, number> = {};
  let supervising = true;
  const supervisor = (async () => {
    while (supervising && !interrupted) {
      await sleep(2000);
      for (const p of processes) {
        if (!p.alive && !p.held && supervising && !interrupted) {
          unplanned[p.name] = (unplanned[p.name] ?? 0) + 1;
          log(`${p.name} exited by itself; starting it again`);
          p.start();
        }
      }
    }
  })();
  await Promise.all(ingests.map((_, i) => waitReady(`http://127.0.0.1:${18801 + i}`)));

  const traffic = new SoakTraffic(kafka, topic, { rate: options.rate, hostileFraction: options.hostileFraction, seed: 7, onError: () => undefined });
  const sending = traffic.run();
  const monitor = startMonitor({
    pool,
    admin,
    topic,
    groupId,
    ingests: ingests.map((p, i) => ({ name: p.name, apiUrl: `http://127.0.0.1:${18801 + i}`, process: p })),
    processes,
    intervalMs: 5000,
  });

  const backfill = { file: path.join(config.backfill.importDir, `soak-${resources.runId}.ndjson`), events: [] as HuntEvent[], invalidLines: 0 };
  const backfillFile = async () => {
    // Copies only of events the hot path has stored: a copy that arrived first would change
    // which of two events of a clue arrived first, and with it the provisional credit.
    const stored = await pool.query<{ event_id: string }>('SELECT event_id FROM events WHERE event_id = ANY($1::text[])', [traffic.sample.map((e) => e.eventId)]);
    const storedIds = new Set(stored.rows.map((r) => r.event_id));
    if (!fs.existsSync(backfill.file)) Object.assign(backfill, writeBackfillFile(backfill.file, traffic.sample.filter((e) => storedIds.has(e.eventId))));
    return backfill.file;
  };
  const runMs = options.minutes * 60_000;
  const quietTailMs = Math.min(90_000, runMs / 5);
  const spacingMs = Math.max(20_000, (runMs - quietTailMs) / 10);
  log(`traffic at ${options.rate}/s for ${options.minutes} min; a fault every ${Math.round(spacingMs / 1000)} s, none in the last ${Math.round(quietTailMs / 1000)} s`);
  const faults = await runChaos(
    { stack, ingests, worker, client, taskQueue, backfillFile, log },
    { firstAfterMs: Math.min(60_000, spacingMs / 2), spacingMs, until: Date.parse(startedAt) + runMs - quietTailMs },
  );
  await sleep(Math.max(0, Date.parse(startedAt) + runMs - Date.now()));
  traffic.stop();
  await sending;
  log(`traffic stopped after ${traffic.stats.sent} records; waiting for the group to catch up`);
  await waitCaughtUp(admin, pool, topic, groupId);
  const samples = await monitor.stop();

  log('reading back the input topic');
  const expected = await expectedFromTopic(kafka, topic, traffic.expectedRejects);
  const seen = new Set(expected.events.map((e) => e.eventId));
  for (const event of backfill.events) if (!seen.has(event.eventId)) expected.events.push(event);
  const counts = await checkCounts(pool, expected.events);
  log('final reconcile of every hunt');
  const hunts = (await pool.query<{ hunt_id: string }>('SELECT hunt_id FROM hunts ORDER BY hunt_id')).rows.map((r) => r.hunt_id);
  const finalReconcile = await client.workflow.execute('reconcile', { taskQueue, workflowId: `soak-final-reconcile-${resources.runId}`, args: [{ huntIds: hunts, repair: true }] });
  log('checking every hunt against the reference fold');
  const final = await checkFinal(pool, expected, await dlqPositions(kafka, dlqTopic, topic), topic);
  const quarantinedLines = backfill.invalidLines === 0 ? 0 : Number((await pool.query('SELECT count(*)::int AS n FROM quarantine WHERE source_topic = $1', [`file:${backfill.file}`])).rows[0].n);

  const restarts = Object.fromEntries(processes.map((p) => [p.name, p.restarts]));
  for (const [name, n] of Object.entries(unplanned)) restarts[`${name} (by itself)`] = n;
  const partial: Omit<SoakResult, 'verdicts'> = {
    command,
    startedAt,
    minutes: options.minutes,
    rate: options.rate,
    traffic: traffic.stats,
    backfill: { file: path.basename(backfill.file), events: backfill.events.length, invalidLines: backfill.invalidLines, quarantined: quarantinedLines },
    faults,
    samples,
    counts,
    final,
    finalReconcile,
    restarts,
  };
  const result: SoakResult = { ...partial, verdicts: verdictsOf(partial) };
  const report = writeSoakReport(RESULTS_DIR, result);
  for (const v of result.verdicts) console.log(`${v.ok ? 'ok    ' : 'FAILED'}  ${v.check}: ${v.detail}`);
  log(`report: ${path.relative(projectRoot, report)}`);

  log('stopping the pipeline and dropping what the soak created');
  supervising = false;
  await supervisor;
  await Promise.all(processes.map((p) => p.kill('SIGTERM')));
  await admin.disconnect().catch(() => undefined);
  await closeClient().catch(() => undefined);
  await pool.end().catch(() => undefined);
  await withTimeout(resources.dispose(), 60_000).catch((err: Error) => log(`cleanup: ${err.message}`));
  fs.rmSync(backfill.file, { force: true });
  if (!options.keepStack) await stack.down();
  log('done');
  process.exit(result.verdicts.every((v) => v.ok) ? 0 : 1);
}

/** 100,000 events of hunts of their own, 0.1% invalid lines, and exact copies of events sent to Kafka. */
function writeBackfillFile(file: string, copies: HuntEvent[]): { events: HuntEvent[]; invalidLines: number } {
  const generator = new TrafficGenerator({ hunts: 10, playersPerHunt: 100, invalidFraction: 0.001, lateClaimFraction: 0.02, random: seededRandom(99) });
  const lines: string[] = [];
  const events: HuntEvent[] = [];
  let invalidLines = 0;
  for (let i = 0; i < 100_000; i++) {
    const record = generator.next();
    const text = record.value.toString('utf8').replaceAll('"huntId":"hunt-', '"huntId":"bf-hunt-');
    lines.push(text);
    if (record.event) events.push(JSON.parse(text) as HuntEvent);
    else invalidLines++;
  }
  for (const event of copies) lines.push(JSON.stringify(event));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return { events, invalidLines };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())]);
}

async function waitReady(apiUrl: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await fetch(`${apiUrl}/readyz`).then((r) => r.status, () => 0)) === 200) return;
    await sleep(200);
  }
  throw new Error(`${apiUrl} not ready within 120 s`);
}

async function waitCaughtUp(admin: ReturnType<ReturnType<typeof createKafka>['admin']>, pool: ReturnType<typeof createPool>, topic: string, groupId: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const high = (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
    const stored = await pool.query('SELECT coalesce(sum(next_offset), 0)::bigint AS n FROM consumer_offsets WHERE group_id = $1', [groupId]).then((r) => Number(r.rows[0].n), () => -1);
    if (stored >= high) return;
    await sleep(1000);
  }
  throw new Error('the group did not catch up within 10 minutes');
}

const program = new Command('soak')
  .description('steady traffic with faults on a private embedded stack, then a full check; writes bench/results/soak-*.md')
  .option('--minutes <n>', 'how long traffic runs', number('--minutes', 1, 24 * 60), 30)
  .option('--rate <n>', 'events per second', number('--rate', 100, 10_000), 2500)
  .option('--hostile-fraction <f>', 'share of hostile records', number('--hostile-fraction', 0, 0.5), 0.005)
  .option('--keep-stack', 'leave the soak stack running afterwards', false)
  .action(async (opts: SoakOptions) => soak(opts, ['npm run soak --', ...process.argv.slice(2)].join(' ')));

await program.parseAsync(process.argv);
