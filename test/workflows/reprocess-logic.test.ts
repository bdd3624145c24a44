/**
 * The reprocess workflow's own logic, with its activities replaced by plain functions (no
 * Postgres): a fill of more calls than one run takes continues as new, under the same job id
 * (which owns the shadow tables), without preparing again, and ends with one catch-up and
 * one swap; a job cancelled while its swap step waits to retry reports the swap if it
 * committed. TestWorkflowEnvironment on the stack's Temporal server.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { CatchUpSummary, FillProgress, FillShadowInput, PrepareResult, ReprocessStepInput, SwapResult } from '../../src/batch/reprocess-job';
import type { ReprocessProgress, ReprocessSummary } from '../../workflows/reprocess';
import { firstRunContinuedAsNew, useWorkflowEnvironment } from '../helpers/temporal';
import { uniqueName, waitFor } from '../helpers/wait';

const env = useWorkflowEnvironment('reprocess-logic');

/** Fake steps: a fill that takes `fillCalls` calls, one hunt each; every call's job id kept. */
function fakeSteps(fillCalls: number) {
  const calls: { step: string; jobId: string }[] = [];
  const record = (step: string, input: ReprocessStepInput) => calls.push({ step, jobId: input.jobId });
  let filled = 0;
  return {
    calls,
    activities: {
      prepareShadow: async (input: ReprocessStepInput): Promise<PrepareResult> => {
        record('prepare', input);
        return { startedSeq: 42, huntsTotal: fillCalls };
      },
      fillShadow: async (input: FillShadowInput): Promise<FillProgress> => {
        record('fill', input);
        filled += 1;
        return { huntsDone: filled, huntsTotal: fillCalls, done: filled >= fillCalls };
      },
      catchUpShadow: async (input: ReprocessStepInput): Promise<CatchUpSummary> => {
        record('catch-up', input);
        return { events: 0, coveredSeq: 42, complete: true, rounds: 1 };
      },
      swapShadow: async (input: ReprocessStepInput): Promise<SwapResult> => {
        record('swap', input);
        return { rows: fillCalls, startedSeq: 42, eventsCaughtUp: 0, fencedEvents: 0, fenceMs: 1, maxSeq: 42 };
      },
    },
  };
}

describe('reprocess workflow logic', () => {
  it('continues as new during a long fill, under the same job id, preparing and swapping once', async () => {
    const fake = fakeSteps(150);
    const { summary, continuedAsNew, progress } = await env.withWorker(fake.activities, async (taskQueue) => {
      const handle = await env.client.workflow.start('reprocess', { taskQueue, workflowId: uniqueName('reprocess-can'), args: [{ projection: 'leaderboard' }] });
      const summary = (await handle.result()) as ReprocessSummary;
      return { summary, continuedAsNew: await firstRunContinuedAsNew(env.client, handle), progress: await handle.query<ReprocessProgress>('progress') };
    });
    expect(continuedAsNew).toBe(true);
    expect(summary).toMatchObject({ projection: 'leaderboard', rows: 150, huntsTotal: 150 });
    expect(progress).toEqual({ phase: 'done', huntsDone: 150, huntsTotal: 150, startedSeq: 42 });
    const steps = fake.calls.map((c) => c.step);
    expect(steps.filter((s) => s === 'prepare')).toHaveLength(1);
    expect(steps.filter((s) => s === 'fill')).toHaveLength(150);
    expect(steps.slice(-2)).toEqual(['catch-up', 'swap']);
    // The first run's job id owns the shadows to the end.
    expect(new Set(fake.calls.map((c) => c.jobId)).size).toBe(1);
  });

  it('answers the progress query for a run continued by the first version, which carried its counts loose', async () => {
    const fake = fakeSteps(12);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const activities = { ...fake.activities, fillShadow: async (input: FillShadowInput) => (await gate, fake.activities.fillShadow(input)) };
    const progress = await env.withWorker(activities, async (taskQueue) => {
      const legacy = { jobId: 'job-of-the-first-run', startedAtMs: 1, huntsDone: 3, huntsTotal: 10, startedSeq: 42 };
      const handle = await env.client.workflow.start('reprocess', { taskQueue, workflowId: uniqueName('reprocess-legacy'), args: [{ projection: 'leaderboard' }, legacy] });
      const during = await handle.query<ReprocessProgress>('progress');
      release();
      await handle.result();
      return during;
    });
    expect(progress).toEqual({ phase: 'filling', huntsDone: 3, huntsTotal: 10, startedSeq: 42 });
    expect(fake.calls.every((c) => c.jobId === 'job-of-the-first-run')).toBe(true);
  });

  it('gives every step a heartbeat timeout, so a killed worker\'s attempt is retried within it', async () => {
    const fake = fakeSteps(1);
    const scheduled = await env.withWorker(fake.activities, async (taskQueue) => {
      const handle = await env.client.workflow.start('reprocess', { taskQueue, workflowId: uniqueName('reprocess-hb'), args: [{ projection: 'leaderboard' }] });
      await handle.result();
      const { events } = await handle.fetchHistory();
      return (events ?? []).flatMap((e) => {
        const attributes = e.activityTaskScheduledEventAttributes;
        return attributes ? [{ step: attributes.activityType?.name, heartbeatTimeoutS: Number(attributes.heartbeatTimeout?.seconds ?? 0) }] : [];
      });
    });
    expect(scheduled).toEqual([
      { step: 'prepareShadow', heartbeatTimeoutS: 30 },
      { step: 'fillShadow', heartbeatTimeoutS: 60 },
      { step: 'catchUpShadow', heartbeatTimeoutS: 60 },
      { step: 'swapShadow', heartbeatTimeoutS: 30 },
    ]);
  });

  // The swap's attempt committed and its worker died before reporting it; the step waits out
  // its retry backoff, and the operator cancels then: no attempt runs to say it swapped.
  it.each([
    { swapCommitted: true, outcome: 'completes with the swap' },
    { swapCommitted: false, outcome: 'ends cancelled' },
  ])('a job cancelled between its swap step\'s attempts $outcome when the swap committed is $swapCommitted', async ({ swapCommitted }) => {
    const failing = async (): Promise<SwapResult> => {
      throw new Error('the worker died before reporting the step');
    };
    const outcome = await cancelDuringSwap(failing, swapCommitted, {
      cancelWhen: (handle) =>
        waitFor(
          'the swap step to wait for its second attempt',
          async () => {
            const pending = (await handle.describe()).raw.pendingActivities?.[0];
            return pending?.activityType?.name === 'swapShadow' && pending.lastFailure ? pending : undefined;
          },
          { timeoutMs: 20_000, intervalMs: 50 },
        ),
    });
    expectOutcome(outcome, swapCommitted);
  });

  // Cancelled while an attempt runs, which then fails (its worker died after the swap
  // committed, or the swap was refused): with a cancellation pending Temporal does not retry
  // it, and the step ends failed, its retry state CANCEL_REQUESTED, not cancelled.
  it.each([
    { swapCommitted: true, outcome: 'completes with the swap' },
    { swapCommitted: false, outcome: 'ends cancelled' },
  ])('a job cancelled during a swap attempt that then fails $outcome when the swap committed is $swapCommitted', async ({ swapCommitted }) => {
    let started: () => void = () => undefined;
    const attemptStarted = new Promise<void>((resolve) => (started = resolve));
    let fail: () => void = () => undefined;
    const failNow = new Promise<void>((resolve) => (fail = resolve));
    const failingLater = async (): Promise<SwapResult> => {
      started();
      await failNow; // no heartbeat: the cancellation never reaches it
      throw new Error('the worker died before reporting the step');
    };
    const outcome = await cancelDuringSwap(failingLater, swapCommitted, {
      cancelWhen: () => attemptStarted,
      // The workflow has asked for the attempt's cancellation before the attempt fails.
      afterCancel: async (handle) => {
        await waitFor('the cancellation request to reach the step', async () => {
          const { events } = await handle.fetchHistory();
          return (events ?? []).some((e) => e.activityTaskCancelRequestedEventAttributes != null);
        }, { timeoutMs: 10_000, intervalMs: 50 });
        fail();
      },
    });
    expectOutcome(outcome, swapCommitted);
  });
});

const SWAP: SwapResult = { rows: 1, startedSeq: 42, eventsCaughtUp: 3, fencedEvents: 2, fenceMs: 1, maxSeq: 47 };

/**
 * A reprocess of one hunt whose swap step is `swapShadow`, cancelled once `cancelWhen`
 * resolves; `swapOutcome` answers as Postgres would. What the job ended with, and the jobs
 * `swapOutcome` was asked about.
 */
async function cancelDuringSwap(
  swapShadow: () => Promise<SwapResult>,
  swapCommitted: boolean,
  when: { cancelWhen: (handle: WorkflowHandle) => Promise<unknown>; afterCancel?: (handle: WorkflowHandle) => Promise<void> },
) {
  const asked: string[] = [];
  const activities = {
    ...fakeSteps(1).activities,
    swapShadow,
    swapOutcome: async (input: ReprocessStepInput): Promise<SwapResult | null> => {
      asked.push(input.jobId);
      return swapCommitted ? SWAP : null;
    },
  };
  const ended = await env.withWorker(activities, async (taskQueue) => {
    const handle = await env.client.workflow.start('reprocess', { taskQueue, workflowId: uniqueName('reprocess-cancel-swap'), args: [{ projection: 'leaderboard' }] });
    await when.cancelWhen(handle);
    await handle.cancel();
    await when.afterCancel?.(handle);
    return handle.result().then(
      (summary) => ({ summary: summary as ReprocessSummary }),
      (failure: unknown) => ({ failure }),
    );
  });
  return { ended, asked };
}

/** Completed with the swap when it committed; otherwise cancelled. Postgres was asked once either way. */
function expectOutcome({ ended, asked }: Awaited<ReturnType<typeof cancelDuringSwap>>, swapCommitted: boolean): void {
  expect(asked).toHaveLength(1);
  if (swapCommitted) {
    expect(ended).toEqual({ summary: expect.objectContaining({ projection: 'leaderboard', ...SWAP, huntsTotal: 1 }) });
  } else {
    expect('failure' in ended && ended.failure).toBeInstanceOf(WorkflowFailedError);
    expect((ended as { failure: WorkflowFailedError }).failure.cause).toBeInstanceOf(CancelledFailure);
  }
}
