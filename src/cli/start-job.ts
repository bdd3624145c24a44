/**
 * Starting a batch job from the terminal as the Web UI would (same workflow type, same JSON
 * input), and with --wait following it to its end. The Temporal SDK is loaded when a job
 * command runs, not when `hunt` starts (see main.ts).
 */
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import { loadConfig, type Config } from '../config';
import type { PostgresTarget } from '../store/pg-connection';
import { createPool } from '../store/pool';

/**
 * The failure a failed job's --wait reports: the innermost cause's words. The SDK wraps them
 * (workflow execution failed, then activity task failed), and its outer messages say nothing
 * of what to fix.
 */
export function jobFailureMessage(err: unknown): string {
  let message = (err as Error | undefined)?.message ?? String(err);
  for (let cause = (err as { cause?: unknown } | undefined)?.cause; cause instanceof Error; cause = (cause as { cause?: unknown }).cause) {
    if (cause.message) message = cause.message;
  }
  return message;
}

/**
 * What a job that ended left undone, for --wait's exit code: a script must not take it for
 * done. Reconcile's hunts that could not be reconciled; a backfill's records deleted from
 * Kafka (retention) before it read them, lost to it. Undefined when none.
 */
export function unfinishedWork(result: unknown): string | undefined {
  const huntsFailed = (result as { huntsFailed?: unknown } | undefined)?.huntsFailed;
  if (typeof huntsFailed === 'number' && huntsFailed > 0) {
    return `${huntsFailed} hunt(s) could not be reconciled (see "failed"; docs/operators.md#huntreconcilehuntsfailing)`;
  }
  const lost = (result as { counts?: { deletedBeforeRead?: unknown } } | undefined)?.counts?.deletedBeforeRead;
  if (typeof lost === 'number' && lost > 0) {
    return `${lost} record(s) of the range were deleted from Kafka (retention) before the job read them, and are not imported`;
  }
  return undefined;
}

export async function withClient<T>(fn: (client: Client, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const { connectClient } = await import('../temporal/client');
  const { client, close } = await connectClient(config);
  try {
    return await fn(client, config);
  } finally {
    await close();
  }
}

/**
 * How long a look at reconcile's progress waits on Postgres, to connect and for its count.
 * `--wait` and `hunt jobs` then show the job without it: a Postgres that accepts connections
 * and never answers (a failover, a dead link) held each look for as long as TCP kept trying.
 */
export const PROGRESS_DB_WAIT_MS = 5000;

/** A pool opened on first use (for reconcile's progress), and closed with end(). */
export function lazyPool(target: PostgresTarget): { get(): pg.Pool; end(): Promise<void> } {
  let pool: pg.Pool | undefined;
  return {
    get: () =>
      (pool ??= createPool(target, 1, () => undefined, {
        connectionTimeoutMillis: PROGRESS_DB_WAIT_MS,
        statement_timeout: PROGRESS_DB_WAIT_MS,
        // The server's limit cannot end a wait on a connection gone dead on the way.
        query_timeout: PROGRESS_DB_WAIT_MS + 1000,
      })),
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
      const undone = unfinishedWork(result);
      if (undone) {
        console.error(`${workflowType} ${workflowId}: ${undone}`);
        process.exitCode = 1;
      }
    } catch (err) {
      throw new Error(`${workflowType} ${workflowId} failed: ${jobFailureMessage(err)}`, { cause: err });
    } finally {
      await pool.end();
    }
  });
}
