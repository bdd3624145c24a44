/**
 * Batch jobs from the terminal: `hunt backfill`, `hunt reprocess`, `hunt rollup`, `hunt jobs`.
 * Each starts the same workflow, with the same JSON input, as the Web UI would. The Temporal
 * SDK is loaded when a job command runs, not when `hunt` starts (see main.ts).
 */
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import { loadConfig, type Config } from '../config';
import { BACKFILL_CHUNK_SIZE, TOPIC_NAME_PATTERN } from '../constants';
import { createPool } from '../store/pool';
import { parseIsoTime } from '../temporal/iso-time';

export const positiveInt = (raw: string) => {
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new InvalidArgumentError(`expected a positive whole number, got '${raw}'`);
  return value;
};

/** The same strict check as the job's own, so a time the command takes the job takes too. */
const isoTime = (raw: string) => {
  const parsed = parseIsoTime(raw);
  if ('problem' in parsed) throw new InvalidArgumentError(`It ${parsed.problem}.`);
  return parsed.iso;
};

async function withClient<T>(fn: (client: Client, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const { connectClient } = await import('../temporal/client');
  const { client, close } = await connectClient(config);
  try {
    return await fn(client, config);
  } finally {
    await close();
  }
}

/** A pool opened on first use (for reconcile's progress), and closed with end(). */
function lazyPool(config: Config): { get(): pg.Pool; end(): Promise<void> } {
  let pool: pg.Pool | undefined;
  return {
    get: () => (pool ??= createPool(config, 1)),
    end: async () => void (await pool?.end()),
  };
}

export async function startJob(workflowType: string, input: Record<string, unknown>, wait: boolean): Promise<void> {
  await withClient(async (client, config) => {
    const workflowId = `${workflowType}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const { HUNT_JOB_KIND } = await import('../temporal/search-attributes');
    const handle = await client.workflow.start(workflowType, {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [input],
      typedSearchAttributes: [{ key: HUNT_JOB_KIND, value: workflowType }],
    });
    console.log(`started ${workflowType} ${workflowId} with input ${JSON.stringify(input)}`);
    if (!wait) return;
    const { followJob } = await import('./job-watch');
    const pool = lazyPool(config);
    try {
      const result = await followJob(handle, workflowType, { pool: workflowType === 'reconcile' ? pool.get() : undefined });
      console.log(JSON.stringify(result, null, 2));
      // The job ended, but not for every hunt it was given: a script must not take it for done.
      const huntsFailed = (result as { huntsFailed?: unknown } | undefined)?.huntsFailed;
      if (typeof huntsFailed === 'number' && huntsFailed > 0) {
        console.error(`${workflowType} ${workflowId}: ${huntsFailed} hunt(s) could not be reconciled (see "failed"; docs/operators.md#huntreconcilehuntsfailing)`);
        process.exitCode = 1;
      }
    } catch (err) {
      // The SDK's "Workflow execution failed" says nothing; its cause says what to fix.
      const cause = (err as { cause?: Error }).cause;
      throw new Error(`${workflowType} ${workflowId} failed: ${cause?.message ?? (err as Error).message}`, { cause: err });
    } finally {
      await pool.end();
    }
  });
}

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
    .option('--from <iso>', "with --topic: records at or after this time (default: the topic's start)", isoTime)
    .option('--to <iso>', 'with --topic: records before this time (default: the end when the job starts)', isoTime)
    .option('--dry-run', 'report what would change, write nothing')
    .option('--hunt <huntId>', 'import only this hunt')
    .option('--chunk-size <n>', `records per chunk (default ${BACKFILL_CHUNK_SIZE})`, positiveInt)
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
    .option('--projection <name>', 'projection to rebuild', 'leaderboard')
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
