/**
 * The reprocess workflow's own logic, with its activities replaced by plain functions (no
 * Postgres): a fill of more calls than one run takes continues as new, under the same job id
 * (which owns the shadow tables), without preparing again, and ends with one catch-up and
 * one swap. TestWorkflowEnvironment on the stack's Temporal server.
 */
import { describe, expect, it } from 'vitest';
import type { CatchUpSummary, FillProgress, FillShadowInput, PrepareResult, ReprocessStepInput, SwapResult } from '../../src/batch/reprocess-job';
import type { ReprocessProgress, ReprocessSummary } from '../../workflows/reprocess';
import { firstRunContinuedAsNew, useWorkflowEnvironment } from '../helpers/temporal';
import { uniqueName } from '../helpers/wait';

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
        return { events: 0, coveredSeq: 42, rounds: 1 };
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
});
