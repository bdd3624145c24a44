/**
 * Batch jobs from the terminal: `hunt backfill`, `hunt reprocess`, `hunt rollup`, `hunt jobs`.
 * Each starts the same workflow, with the same JSON input, as the Web UI would.
 */
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { loadConfig } from '../config';

const positiveInt = (raw: string) => {
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new InvalidArgumentError(`expected a positive whole number, got '${raw}'`);
  return value;
};

async function withClient<T>(fn: (client: Client, taskQueue: string) => Promise<T>): Promise<T> {
  const config = loadConfig();
  // The Temporal SDK is loaded when a job command runs, not when `hunt` starts (see main.ts).
  const { connectClient } = await import('../temporal/client');
  const { client, close } = await connectClient(config);
  try {
    return await fn(client, config.temporal.taskQueue);
  } finally {
    await close();
  }
}

export async function startJob(workflowType: string, input: Record<string, unknown>, wait: boolean): Promise<void> {
  await withClient(async (client, taskQueue) => {
    const workflowId = `${workflowType}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const handle = await client.workflow.start(workflowType, {
      taskQueue,
      workflowId,
      args: [input],
      typedSearchAttributes: [{ key: (await import('../temporal/search-attributes')).HUNT_JOB_KIND, value: workflowType }],
    });
    console.log(`started ${workflowType} ${workflowId} with input ${JSON.stringify(input)}`);
    if (wait) console.log(JSON.stringify(await followProgress(handle), null, 2));
  });
}

/** Prints the job's progress query every second until it ends; returns its result. */
async function followProgress(handle: WorkflowHandle): Promise<unknown> {
  const result = handle.result();
  let finished = false;
  void result.finally(() => (finished = true)).catch(() => undefined);
  while (!finished) {
    const progress = await handle.query<Record<string, unknown>>('progress').catch(() => undefined);
    if (progress) console.log(`progress: ${JSON.stringify(progress)}`);
    await Promise.race([result.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000))]);
  }
  return result;
}

export function registerJobCommands(program: Command): void {
  program
    .command('backfill')
    .description('import historical events from an NDJSON file (workflow `backfill`)')
    .requiredOption('--file <path>', 'NDJSON file, one event per line (readable by the worker)')
    .option('--dry-run', 'report what would change, write nothing')
    .option('--hunt <huntId>', 'import only this hunt')
    .option('--chunk-size <n>', 'records per transaction', positiveInt)
    .option('--wait', 'follow progress until the job ends')
    .action(async (opts: { file: string; dryRun?: boolean; hunt?: string; chunkSize?: number; wait?: boolean }) => {
      const input = {
        source: { kind: 'file', path: path.resolve(opts.file) },
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
    .option('--wait', 'follow progress until the job ends')
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
    .description('recent batch jobs with status and progress')
    .option('-n, --limit <n>', 'how many', positiveInt, 20)
    .action(async (opts: { limit: number }) => {
      await withClient(async (client, taskQueue) => {
        let shown = 0;
        for await (const execution of client.workflow.list({ query: `TaskQueue = '${taskQueue}'` })) {
          if (shown++ >= opts.limit) break;
          let progress = '';
          if (execution.status.name === 'RUNNING') {
            const p = await client.workflow
              .getHandle(execution.workflowId, execution.runId)
              .query<Record<string, unknown>>('progress')
              .catch(() => undefined);
            if (p) progress = JSON.stringify(p);
          }
          console.log(
            [execution.type.padEnd(12), execution.status.name.padEnd(10), execution.startTime.toISOString(), execution.workflowId, progress].join('  '),
          );
        }
        if (shown === 0) console.log(`no jobs on task queue ${taskQueue}`);
      });
    });
}
