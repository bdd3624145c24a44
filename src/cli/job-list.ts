/**
 * `hunt jobs`: the task queue's recent jobs, newest first; running ones with their
 * progress, finished ones with how long they took. Loaded only when the command runs.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import type pg from 'pg';
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
      lines.push(`    ${renderPlainLine(snapshot)}`);
    }
  }
  if (shown === 0) lines.push(options.running ? `no running jobs on task queue ${taskQueue}` : `no jobs on task queue ${taskQueue}`);
  return lines;
}

function jobLine(execution: WorkflowExecutionInfo): string {
  const took = execution.closeTime ? `took ${formatDuration((execution.closeTime.getTime() - execution.startTime.getTime()) / 1000)}` : '';
  return [execution.type.padEnd(12), execution.status.name.padEnd(16), execution.startTime.toISOString(), execution.workflowId, took].join('  ').trimEnd();
}
