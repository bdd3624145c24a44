/**
 * Batch jobs from the terminal: `hunt backfill`, `hunt reprocess`, `hunt rollup`, `hunt jobs`.
 * Each starts the same workflow, with the same JSON input, as the Web UI would (start-job.ts).
 */
import path from 'node:path';
import { Option, type Command } from 'commander';
import { BACKFILL_CHUNK_SIZE, BACKFILL_MAX_CHUNK_SIZE, TOPIC_NAME_PATTERN } from '../constants';
import { PROJECTIONS } from '../store/batch/reprocess';
import { chunkSize, huntId, kafkaStart, kafkaTime, positiveInt } from './arguments';
import { lazyPool, startJob, withClient } from './start-job';

interface BackfillOptions {
  file?: string;
  topic?: string;
  from?: string;
  to?: string;
  dryRun?: boolean;
  hunt?: string;
  chunkSize?: number;
  wait?: boolean;
}

/** The backfill's `source`, or what is wrong with the options. */
export function backfillSource(opts: BackfillOptions): Record<string, unknown> | string {
  if (opts.file !== undefined) return { kind: 'file', path: path.resolve(opts.file) };
  if (opts.topic === undefined) return 'say what to import: --file <path> (NDJSON) or --topic <topic> [--from ISO] [--to ISO] (a Kafka range)';
  if (!TOPIC_NAME_PATTERN.test(opts.topic)) return `--topic must be a Kafka topic name ([A-Za-z0-9._-], 1-249 chars), got '${opts.topic}'`;
  if (opts.from !== undefined && opts.to !== undefined && opts.from >= opts.to) return `--from (${opts.from}) must be before --to (${opts.to})`;
  return { kind: 'kafka', topic: opts.topic, ...(opts.from ? { from: opts.from } : {}), ...(opts.to ? { to: opts.to } : {}) };
}

export function registerJobCommands(program: Command): void {
  program
    .command('backfill')
    .description('import historical events from an NDJSON file or a time range of a Kafka topic (workflow `backfill`)')
    .addOption(new Option('--file <path>', 'NDJSON file, one event per line (under BACKFILL_IMPORT_DIR on the worker)').conflicts(['topic', 'from', 'to']))
    .option('--topic <topic>', 'Kafka topic to import a time range of')
    .option('--from <iso>', "with --topic: records at or after this time (default: the topic's start)", kafkaStart)
    .option('--to <iso>', 'with --topic: records before this time (default: the end when the job starts)', kafkaTime)
    .option('--dry-run', 'report what would change, write nothing')
    .option('--hunt <huntId>', 'import only this hunt', huntId)
    .option('--chunk-size <n>', `records per chunk (default ${BACKFILL_CHUNK_SIZE}, at most ${BACKFILL_MAX_CHUNK_SIZE})`, chunkSize)
    .option('--wait', 'follow progress (a bar with rate and ETA on a terminal) until the job ends')
    .action(async (opts: BackfillOptions, command: Command) => {
      if ((opts.from !== undefined || opts.to !== undefined) && opts.topic === undefined) command.error('error: --from and --to need --topic');
      const source = backfillSource(opts);
      if (typeof source === 'string') command.error(`error: ${source}`);
      const input = {
        source,
        ...(opts.dryRun ? { dryRun: true } : {}),
        ...(opts.hunt ? { huntId: opts.hunt } : {}),
        ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
      };
      await startJob('backfill', input, !!opts.wait);
    });

  program
    .command('reprocess')
    .description('rebuild a projection from the raw event store and swap it in (workflow `reprocess`)')
    .addOption(new Option('--projection <name>', 'projection to rebuild').choices(Object.keys(PROJECTIONS)).default('leaderboard'))
    .option('--wait', 'follow progress (a bar with rate and ETA on a terminal) until the job ends')
    .action(async (opts: { projection: string; wait?: boolean }) => {
      await startJob('reprocess', { projection: opts.projection }, !!opts.wait);
    });

  program
    .command('rollup')
    .description('flush rollups now (workflow `rollupFlush`; the schedule also runs it)')
    .option('--wait', 'wait until the job ends')
    .action(async (opts: { wait?: boolean }) => {
      await startJob('rollupFlush', {}, !!opts.wait);
    });

  program
    .command('jobs')
    .description('recent batch jobs, newest first, with status and the progress of running ones')
    .option('-n, --limit <n>', 'how many', positiveInt, 20)
    .option('--running', 'only running jobs')
    .action(async (opts: { limit: number; running?: boolean }) => {
      await withClient(async (client, config) => {
        const { listJobs } = await import('./job-list');
        const pool = lazyPool(config);
        try {
          for (const line of await listJobs(client, config.temporal.taskQueue, { ...opts, pool: pool.get })) console.log(line);
        } finally {
          await pool.end();
        }
      });
    });
}
