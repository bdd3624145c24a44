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
 * The failure a failed job's --wait reports: the job's own words. The SDK wraps them (workflow
 * execution failed, then activity task failed), and its outer messages say nothing of what to
 * fix; the job's failure in turn carries its cause (a driver's error), whose words alone
 * ("canceling statement due to statement timeout") say nothing of which check or step it was.
 * So only the SDK's wrappers are looked through. Async: the SDK loads only when a job runs.
 */
export async function jobFailureMessage(err: unknown): Promise<string> {
  const { WorkflowFailedError } = await import('@temporalio/client');
  const { ActivityFailure, ApplicationFailure, CancelledFailure, ChildWorkflowFailure, TerminatedFailure, TimeoutFailure } = await import('@temporalio/common');
  const isWrapper = (e: unknown) => e instanceof WorkflowFailedError || e instanceof ActivityFailure || e instanceof ChildWorkflowFailure;
  const isOwn = (e: unknown) => e instanceof ApplicationFailure || e instanceof CancelledFailure || e instanceof TimeoutFailure || e instanceof TerminatedFailure;
  let message = (err as Error | undefined)?.message || String(err);
  for (let at: unknown = err; isWrapper(at); ) {
    at = (at as Error).cause;
    if (!(at instanceof Error)) break;
    if (at.message) message = at.message;
    if (isOwn(at)) break;
  }
  return message;
}

/**
 * What a job that ended left undone, for --wait's exit code: a script must not take it for
 * done. Reconcile's hunts that could not be reconciled; a backfill's records deleted from
 * Kafka (retention) before it read them, lost to it; a data-quality repair's hunts whose repair
 * the database refused (each check counts its own in `repaired.huntsFailed`). Undefined when none.
 */
export function unfinishedWork(result: unknown): string | undefined {
  const huntsFailed = (result as { huntsFailed?: unknown } | undefined)?.huntsFailed;
  if (typeof huntsFailed === 'number' && huntsFailed > 0) {
    return `${huntsFailed} hunt(s) could not be reconciled (see "failed"; docs/operators.md#huntreconcilehuntsfailing)`;
  }
  const unrepaired = unrepairedHunts(result);
  if (unrepaired.total > 0) {
    return (
      `${unrepaired.total} hunt(s) could not be repaired (${unrepaired.byCheck}): see which and why in reconcile_failures ` +
      '(docs/operators.md#huntreconcilehuntsfailing), then run `hunt dq run --repair` again'
    );
  }
  const lost = (result as { counts?: { deletedBeforeRead?: unknown } } | undefined)?.counts?.deletedBeforeRead;
  if (typeof lost === 'number' && lost > 0) {
    return `${lost} record(s) of the range were deleted from Kafka (retention) before the job read them, and are not imported`;
  }
  return undefined;
}

/** A dataQuality result's hunts whose repair failed, in all and per check ("score_drift 2"). */
function unrepairedHunts(result: unknown): { total: number; byCheck: string } {
  const checks = (result as { checks?: unknown } | undefined)?.checks;
  const failing = (Array.isArray(checks) ? (checks as Array<{ check?: unknown; repaired?: { huntsFailed?: unknown } } | null>) : [])
    .map((c) => ({ check: String(c?.check), failed: c?.repaired?.huntsFailed }))
    .filter((c): c is { check: string; failed: number } => typeof c.failed === 'number' && c.failed > 0);
  return { total: failing.reduce((sum, c) => sum + c.failed, 0), byCheck: failing.map((c) => `${c.check} ${c.failed}`).join(', ') };
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
      throw new Error(`${workflowType} ${workflowId} failed: ${await jobFailureMessage(err)}`, { cause: err });
    } finally {
      await pool.end();
    }
  });
}
