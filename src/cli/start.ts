/**
 * `hunt start`: the main job (see main-job.ts). Registered here without loading it: the
 * Temporal SDK and the stack's modules load only when the command runs.
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { MainJobOptions } from './main-job';

const positive = (raw: string) => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(`expected a positive number, got '${raw}'`);
  return value;
};

export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('stack up, migrate, ingest + read API, batch worker + Schedules, demo traffic; prints the leaderboard and Temporal Web UI URLs')
    .option('--rate <n>', 'demo events per second', positive, 50)
    .option('--no-demo', 'run without the demo producer')
    .option('--no-worker', 'run without the batch-plane worker (and leave the Schedules as they are)')
    .option('--duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)', positive)
    .action(async (opts: MainJobOptions) => {
      const { runMainJob } = await import('./main-job');
      await runMainJob(opts);
    });
}
