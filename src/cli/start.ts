/**
 * `hunt start`: the main job (see main-job.ts). Registered here without loading it: the
 * Temporal SDK and the stack's modules load only when the command runs.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { MAX_PRODUCE_RATE } from '../demo/produce';
import type { MainJobOptions } from './main-job';
import { eventsPerSecond } from './produce';

const positive = (raw: string) => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(`expected a positive number, got '${raw}'`);
  return value;
};

/** setTimeout's longest wait (about 24.8 days): a longer one fires at once. */
const MAX_DURATION_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

const duration = (raw: string) => {
  const value = positive(raw);
  if (value > MAX_DURATION_SECONDS) throw new InvalidArgumentError(`expected at most ${MAX_DURATION_SECONDS} seconds (about 24 days; leave it out to run until Ctrl-C), got '${raw}'`);
  return value;
};

export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('stack up, migrate, ingest + read API, batch worker + Schedules, demo traffic; prints the leaderboard and Temporal Web UI URLs')
    .option('--rate <n>', `demo events per second (at most ${MAX_PRODUCE_RATE})`, eventsPerSecond, 50)
    .option('--no-demo', 'run without the demo producer')
    .option('--no-worker', 'run without the batch-plane worker (and leave the Schedules as they are)')
    .option('--duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)', duration)
    .action(async (opts: MainJobOptions) => {
      const { runMainJob } = await import('./main-job');
      await runMainJob(opts);
    });
}
