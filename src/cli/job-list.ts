/**
 * `hunt jobs`: the task queue's recent jobs, newest first; running ones with their
 * progress, finished ones with how long they took. Loaded only when the command runs.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import type pg from 'pg';
import { toDetailText } from '../events/detail-text';
import { observeJob } from './job-watch';
import { formatDuration, renderPlainLine } from './progress';

export interface ListJobsOptions {
  limit: number;
  running?: boolean;
  /** Opens a pool for reconcile's progress (asked for only when one runs). */
  pool: () => pg.Pool;
}

export async function listJobs(client: Client, taskQueue: string, options: ListJobsOptions): Promise<string[]> {
  const query = `TaskQueue = '${taskQueue.replace(/'/g, "\\'")}'${options.running ? " AND ExecutionStatus = 'Running'" : ''}`;
  const lines: string[] = [];
  let shown = 0;
  for await (const execution of client.workflow.list({ query })) {
    if (shown++ >= options.limit) break;
    lines.push(jobLine(execution));
    if (execution.status.name === 'RUNNING') {
      const handle = client.workflow.getHandle(execution.workflowId, execution.runId);
      const snapshot = await observeJob(handle, execution.type, {
        startedAt: execution.startTime,
        pool: execution.type === 'reconcile' ? options.pool() : undefined,
      });
      // Named by its type, which whoever started the job chose (see jobLine); a failure quoted in
      // it (why the progress query failed) is escaped too.
      lines.push(`    ${toDetailText(renderPlainLine(snapshot))}`);
    }
  }
  if (shown === 0) lines.push(options.running ? `no running jobs on task queue ${taskQueue}` : `no jobs on task queue ${taskQueue}`);
  return lines;
}

/**
 * The type and the id are whoever started the job's to choose (the Web UI takes any text), so
 * they are escaped as a rejection's detail is: an escape sequence there would redraw the
 * operator's terminal.
 */
function jobLine(execution: WorkflowExecutionInfo): string {
  const took = execution.closeTime ? `took ${formatDuration((execution.closeTime.getTime() - execution.startTime.getTime()) / 1000)}` : '';
  return [toDetailText(execution.type).padEnd(12), execution.status.name.padEnd(16), execution.startTime.toISOString(), toDetailText(execution.workflowId), took].join('  ').trimEnd();
}
