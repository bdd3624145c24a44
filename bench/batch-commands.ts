/**
 * `npm run bench -- batch` and `npm run bench -- reconcile`: the batch plane's benchmarks,
 * registered on bench/run.ts's program.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { BACKFILL_CHUNK_SIZE, HUNTS_PER_TRANSACTION } from '../src/constants';
import { runBatchBench, type BatchBenchOptions } from './batch';
import { parseDuration, runReconcileBench, type ReconcileBenchOptions } from './reconcile';

const number = (name: string, min: number, max = Infinity) => (raw: string) => {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}, got '${raw}'`);
  return value;
};
const fraction = (name: string) => (raw: string) => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 0.5) throw new InvalidArgumentError(`${name} must be a number from 0 to 0.5, got '${raw}'`);
  return value;
};
const duration = (name: string) => (raw: string) => {
  if (parseDuration(raw) === undefined) throw new InvalidArgumentError(`${name} must be a duration such as 30s, 5m or 5 minutes, got '${raw}'`);
  return raw;
};

const commandLine = () => ['npm run bench --', ...process.argv.slice(2)].join(' ');

export function registerBatchBenchmarks(program: Command): void {
  program
    .command('batch')
    .description('backfill and reprocess rates over 1,000,000 stored events, via Temporal and with the same activities called directly')
    .addOption(new Option('--events <n>', 'distinct valid events in the NDJSON file').argParser(number('--events', 1000)).default(1_000_000))
    .addOption(new Option('--hunts <n>', 'hunts in the generated traffic').argParser(number('--hunts', 1)).default(200))
    .addOption(new Option('--players <n>', 'players per hunt').argParser(number('--players', 1)).default(500))
    .addOption(new Option('--duplicates <fraction>', 'records that resend an earlier eventId').argParser(fraction('--duplicates')).default(0.01))
    .addOption(new Option('--invalid <fraction>', 'invalid records (quarantined)').argParser(fraction('--invalid')).default(0.001))
    .addOption(new Option('--seed <n>', 'seed of the traffic generator').argParser(number('--seed', 0)).default(42))
    .addOption(new Option('--chunk-size <n>', 'backfill records per chunk (the job default)').argParser(number('--chunk-size', 1, 50_000)).default(BACKFILL_CHUNK_SIZE))
    .addOption(new Option('--hunts-per-chunk <n>', 'reprocess: the most hunts per fill chunk (the job default; a chunk also ends at about 500,000 events)').argParser(number('--hunts-per-chunk', 1, 10_000)).default(200))
    .addOption(new Option('--rounds <n>', 'rounds of both paths, alternating which goes first').argParser(number('--rounds', 1, 6)).default(2))
    .option('--direct-first', 'the direct path goes first in the first round', false)
    .option('--keep', 'keep the databases and the data file for inspection', false)
    .action(async (opts: BatchBenchOptions) => {
      const result = await runBatchBench(opts, commandLine());
      for (const v of result.verdicts) console.log(`${v.met ? 'met    ' : 'NOT MET'}  ${v.target}: ${v.measured} (goal ${v.goal})`);
      // pg, kafkajs and the Temporal connection leave handles that close lazily; the figures are written.
      process.exit(0);
    });

  program
    .command('reconcile')
    .description('recomputation rate (one hunt of 1,000,000 events; 1,000 hunts of 1,000) and time from a corruption to its repair by the schedule')
    .addOption(new Option('--single-events <n>', 'events of the one big hunt').argParser(number('--single-events', 1000)).default(1_000_000))
    .addOption(new Option('--single-players <n>', 'players of the big hunt').argParser(number('--single-players', 1)).default(500))
    .addOption(new Option('--hunts <n>', 'hunts of the many-hunts case').argParser(number('--hunts', 1)).default(1000))
    .addOption(new Option('--hunt-events <n>', 'events per hunt of the many-hunts case').argParser(number('--hunt-events', 10)).default(1000))
    .addOption(new Option('--hunt-players <n>', 'players per hunt of the many-hunts case').argParser(number('--hunt-players', 1)).default(50))
    .addOption(new Option('--hunts-per-transaction <n>', 'hunts per reconcile transaction (the job default)').argParser(number('--hunts-per-transaction', 1, 1000)).default(HUNTS_PER_TRANSACTION))
    .addOption(new Option('--seed <n>', 'seed of the traffic generator').argParser(number('--seed', 0)).default(7))
    .addOption(new Option('--interval <duration>', 'schedule interval for time-to-repair (default: RECONCILE_EVERY, 5m)').argParser(duration('--interval')))
    .addOption(new Option('--samples <n>', 'corruptions, spread evenly over the schedule interval').argParser(number('--samples', 1, 20)).default(5))
    .addOption(new Option('--stream-rate <n>', 'events/s flowing into the live hunt during time-to-repair').argParser(number('--stream-rate', 1, 5000)).default(5))
    .option('--no-recompute', 'skip the recomputation rates')
    .option('--no-time-to-repair', 'skip the time-to-repair measurement')
    .option('--no-workflow', 'skip the recomputation through the reconcile workflow')
    .option('--keep', 'keep the databases for inspection', false)
    .action(async (opts: ReconcileBenchOptions) => {
      const result = await runReconcileBench(opts, commandLine());
      for (const v of result.figures) console.log(`${v.met === undefined ? 'info   ' : v.met ? 'met    ' : 'NOT MET'}  ${v.target}: ${v.measured}${v.goal ? ` (goal ${v.goal})` : ''}`);
      process.exit(0);
    });
}
