/** The job_progress key (store/correctness/job-progress.ts) of the activity attempt running now. */
import { ApplicationFailure, type Info } from '@temporalio/activity';
import type { ProgressKey } from '../store/correctness/job-progress';

/** Progress is kept per workflow run (a new run of the same workflow id starts afresh) and step; the attempt owns the row. */
export function progressKeyOf(info: Info, step: string): ProgressKey {
  const run = info.workflowExecution;
  if (!run) throw ApplicationFailure.nonRetryable(`${step} keeps its progress per workflow run: start its workflow, not the activity alone`);
  return { runId: `${run.workflowId}/${run.runId}`, step, attempt: info.attempt };
}
