/**
 * `npm run bench -- <name> [options]`: the project's benchmarks, run against the embedded
 * stack (or the services the environment points at). Results go to bench/results/.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { runIngestBench, type IngestBenchOptions } from './ingest';
import { registerBatchBenchmarks } from './batch-commands';
import { runApplyBench, type ApplyBenchOptions } from './apply';
import { runMemoryBench } from './memory';
import { runApiBench, type ApiBenchOptions } from './api';
import { runStreamBench, type StreamBenchOptions } from './stream';

const number = (name: string, min: number, max = Infinity) => (raw: string) => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) throw new InvalidArgumentError(`${name} must be a number from ${min} to ${max}, got '${raw}'`);
  return value;
};

function parseEnv(raw: string, previous: Record<string, string>): Record<string, string> {
  const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(raw);
  if (!match?.[1]) throw new InvalidArgumentError(`expected KEY=VALUE, got '${raw}'`);
  return { ...previous, [match[1]]: match[2] ?? '' };
}

/** `1,2,4`: the peer's task counts (the topic has 4 partitions, so at most 4 tasks get any). */
function taskCounts(raw: string): number[] {
  const counts = raw.split(',').map((part) => number('--peer-tasks', 1, 4)(part.trim()));
  if (counts.some((c) => !Number.isInteger(c))) throw new InvalidArgumentError(`--peer-tasks takes whole numbers, got '${raw}'`);
  return [...new Set(counts)];
}

const program = new Command('bench').description('Treasure Hunt Engine benchmarks').showHelpAfterError();

program
  .command('ingest')
  .description('drain rate, naive baseline, ceilings, freshness and memory of the ingest hot path')
  .addOption(new Option('--events <n>', 'records in the preloaded backlog').argParser(number('--events', 1000)).default(1_000_000))
  .addOption(new Option('--hunts <n>', 'hunts in the generated traffic').argParser(number('--hunts', 1)).default(100))
  .addOption(new Option('--players <n>', 'players per hunt').argParser(number('--players', 1)).default(500))
  .addOption(new Option('--duplicates <fraction>', 'records that resend an earlier eventId').argParser(number('--duplicates', 0, 0.5)).default(0.01))
  .addOption(new Option('--invalid <fraction>', 'invalid records (DLQ + quarantine)').argParser(number('--invalid', 0, 0.5)).default(0.001))
  .addOption(new Option('--seed <n>', 'seed of the traffic generator').argParser(number('--seed', 0)).default(42))
  .addOption(new Option('--naive-seconds <s>', 'how long the naive consumer runs').argParser(number('--naive-seconds', 1)).default(30))
  .addOption(new Option('--freshness-seconds <s>', 'steady window of the freshness test').argParser(number('--freshness-seconds', 1)).default(30))
  .addOption(new Option('--freshness-rate <n>', 'events/s of the freshness test').argParser(number('--freshness-rate', 1)).default(5000))
  .addOption(new Option('--warmup-seconds <s>', 'warm-up before the freshness window').argParser(number('--warmup-seconds', 0)).default(5))
  .option('--no-profile', 'skip the profiled second drain')
  .addOption(new Option('--profile-seconds <s>', 'how long the profiled drain runs').argParser(number('--profile-seconds', 1)).default(20))
  .addOption(new Option('--scale-out <n>', 'also drain with n ingest processes in one group (0: skip)').argParser(number('--scale-out', 0, 4)).default(2))
  .option('--no-peer', 'skip the industry peer (Kafka Connect + Debezium JDBC sink)')
  .addOption(new Option('--peer-tasks <list>', "the peer's sink task counts to drain with, comma-separated; ours is compared with the fastest").argParser(taskCounts).default([1, 2, 4], '1,2,4'))
  .option('--keep', 'keep the databases and topics of the run for inspection', false)
  .option('--ingest-env <KEY=VALUE...>', 'environment for the ingest children, e.g. INGEST_MAX_BATCH_EVENTS=20000', parseEnv, {})
  .action(async (opts: IngestBenchOptions) => {
    const command = ['npm run bench --', ...process.argv.slice(2)].join(' ');
    const result = await runIngestBench({ ...opts, events: Math.floor(opts.events), hunts: Math.floor(opts.hunts), players: Math.floor(opts.players) }, command);
    for (const v of result.verdicts) console.log(`${v.met ? 'met    ' : 'NOT MET'}  ${v.target}: ${v.measured} (goal ${v.goal})`);
    // kafkajs and pg leave sockets that close lazily; the figures are written, so leave now.
    process.exit(0);
  });

program
  .command('apply')
  .description('per-event CPU of classification and of the store path (no Kafka): for quick experiments')
  .addOption(new Option('--events <n>', 'records').argParser(number('--events', 1000)).default(300_000))
  .addOption(new Option('--batch <n>', 'records per micro-batch').argParser(number('--batch', 1)).default(5000))
  .addOption(new Option('--rounds <n>', 'databases filled one after another').argParser(number('--rounds', 1, 10)).default(2))
  .addOption(new Option('--seed <n>', 'seed of the traffic generator').argParser(number('--seed', 0)).default(42))
  .option('--prepare <sql>', 'SQL run on each fresh database first (schema experiments)')
  .option('--no-pipeline', "send each statement of a micro-batch after the one before has answered (pg's default), not all at once as `hunt ingest` does")
  .action(async (opts: ApplyBenchOptions) => {
    await runApplyBench({ ...opts, events: Math.floor(opts.events), batch: Math.floor(opts.batch) }, ['npm run bench --', ...process.argv.slice(2)].join(' '));
    process.exit(0);
  });

program
  .command('memory')
  .description("the consumer's memory (RSS, heap, external) second by second while it drains a 1M backlog")
  .argument('[env...]', 'KEY=VALUE settings for the ingest child')
  .addOption(new Option('--seconds <n>', 'how long to watch').argParser(number('--seconds', 1, 600)).default(25))
  .action(async (env: string[], opts: { seconds: number }) => {
    await runMemoryBench(env.reduce((all, kv) => parseEnv(kv, all), {} as Record<string, string>), opts.seconds);
    process.exit(0);
  });

program
  .command('api')
  .description('leaderboard readers against the read API while ingest drains a backlog: reads/s, read p99, and the drain against a quiet one')
  .addOption(new Option('--events <n>', 'records in the backlog each drain reads').argParser(number('--events', 1000)).default(500_000))
  .addOption(new Option('--players <n>', 'players in the hunt the readers read').argParser(number('--players', 1)).default(100_000))
  .addOption(new Option('--readers <n>', 'concurrent readers').argParser(number('--readers', 1, 5000)).default(200))
  .addOption(new Option('--limit <n>', 'leaderboard entries per read').argParser(number('--limit', 1, 1000)).default(10))
  .addOption(new Option('--think-ms <ms>', "each reader's pause between reads (0: as fast as answers come)").argParser(number('--think-ms', 0)).default(0))
  .addOption(new Option('--readers-nice <n>', "CPU priority of the readers' process, 0-19 (they stand for clients on other machines)").argParser(number('--readers-nice', 0, 19)).default(10))
  .addOption(new Option('--rounds <n>', 'pairs of drains (quiet, readers), alternating their order').argParser(number('--rounds', 1, 5)).default(2))
  .addOption(new Option('--hunts <n>', 'hunts in the backlog').argParser(number('--hunts', 1)).default(100))
  .addOption(new Option('--seed <n>', 'seed of the traffic generator').argParser(number('--seed', 0)).default(42))
  .option('--keep', 'keep the databases and topics of the run for inspection', false)
  .option('--ingest-env <KEY=VALUE...>', 'environment for the ingest children, e.g. API_DB_POOL_SIZE=2', parseEnv, {})
  .action(async (opts: ApiBenchOptions) => {
    const command = ['npm run bench --', ...process.argv.slice(2)].join(' ');
    const { summary } = await runApiBench(
      { ...opts, events: Math.floor(opts.events), players: Math.floor(opts.players), readers: Math.floor(opts.readers), rounds: Math.floor(opts.rounds) },
      command,
    );
    console.log(`${summary.met ? 'met    ' : 'NOT MET'}  drain with readers / quiet: ${summary.drainRatio} (goal >= ${summary.goalDrainRatio}); ${summary.readsPerSecond} reads/s, read p99 ${summary.readP99Ms} ms`);
    process.exit(0);
  });

program
  .command('stream')
  .description('live leaderboard pushes: produce-to-push latency with open streams under load, and what each stream costs')
  .addOption(new Option('--rate <n>', 'events per second').argParser(number('--rate', 1)).default(5000))
  .addOption(new Option('--hunts <n>', 'hunts').argParser(number('--hunts', 1)).default(100))
  .addOption(new Option('--streams <n>', 'open streams, spread over the hunts').argParser(number('--streams', 1)).default(1000))
  .addOption(new Option('--seconds <n>', 'length of each measured window').argParser(number('--seconds', 1)).default(20))
  .action(async (opts: StreamBenchOptions) => {
    await runStreamBench(opts, ['npm run bench --', ...process.argv.slice(2)].join(' '));
    process.exit(0);
  });

registerBatchBenchmarks(program);

await program.parseAsync(process.argv);
