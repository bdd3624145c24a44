/**
 * Declarative Temporal Schedules of the batch plane, applied by `hunt schedules apply`
 * (create when missing, update in place when present; a paused schedule stays paused).
 */
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Config } from '../config';
import { HUNT_JOB_KIND } from './search-attributes';

export interface ScheduleSpecEntry {
  scheduleId: string;
  workflowType: string;
  input: Record<string, unknown>;
  /** An interval such as `1m`, or a cron expression (UTC) when `cron` is set. */
  every?: string;
  cron?: string;
  /** Why this overlap policy and catch-up window: operators read it in the schedule's memo. */
  rationale: string;
  overlap: ScheduleOverlapPolicy;
  catchupWindow: string;
}

export function scheduleSpecs(config: Config): ScheduleSpecEntry[] {
  return [
    {
      scheduleId: 'hunt-rollup-flush',
      workflowType: 'rollupFlush',
      input: {},
      every: config.schedules.rollupFlushEvery,
      // Each run flushes everything since the watermark, so an overlapping or missed run
      // adds nothing: skip overlaps, and after an outage one catch-up run is enough.
      overlap: ScheduleOverlapPolicy.SKIP,
      catchupWindow: '10 minutes',
      rationale: 'Cumulative job (watermark in Postgres): overlaps are skipped; one catch-up run covers any outage.',
    },
    {
      scheduleId: 'hunt-reconcile',
      workflowType: 'reconcile',
      input: {},
      every: config.schedules.reconcileEvery,
      // Also watermark-based: a run covers every hunt with events since the last one.
      overlap: ScheduleOverlapPolicy.SKIP,
      catchupWindow: '30 minutes',
      rationale: 'Reconciles hunts with events since its watermark: overlaps are skipped; one catch-up run covers an outage.',
    },
    {
      scheduleId: 'hunt-data-quality-nightly',
      workflowType: 'dataQuality',
      input: { repair: false },
      cron: config.schedules.dataQualityCron,
      // A report per night; a missed night is worth one late run, not a pile of them.
      overlap: ScheduleOverlapPolicy.SKIP,
      catchupWindow: '6 hours',
      rationale: 'Nightly report without repair (an operator decides); a night missed within 6 h is run late, once.',
    },
  ];
}

function toOptions(config: Config, spec: ScheduleSpecEntry): ScheduleOptions {
  return {
    scheduleId: spec.scheduleId,
    spec: spec.cron ? { cronExpressions: [spec.cron] } : { intervals: [{ every: spec.every ?? '1m' }] },
    action: {
      type: 'startWorkflow',
      workflowType: spec.workflowType,
      args: [spec.input],
      taskQueue: config.temporal.taskQueue,
      workflowId: spec.scheduleId,
      typedSearchAttributes: [{ key: HUNT_JOB_KIND, value: spec.workflowType }],
    },
    policies: { overlap: spec.overlap, catchupWindow: spec.catchupWindow },
    memo: { rationale: spec.rationale },
  };
}

/** Creates or updates every schedule; returns what it did per schedule. */
export async function applySchedules(client: Client, config: Config): Promise<{ scheduleId: string; action: 'created' | 'updated' }[]> {
  const results: { scheduleId: string; action: 'created' | 'updated' }[] = [];
  for (const spec of scheduleSpecs(config)) {
    const options = toOptions(config, spec);
    const handle = client.schedule.getHandle(spec.scheduleId);
    try {
      await handle.describe();
      await handle.update((previous) => ({ ...previous, spec: options.spec, action: options.action, policies: options.policies! }));
      results.push({ scheduleId: spec.scheduleId, action: 'updated' });
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
      await client.schedule.create(options);
      results.push({ scheduleId: spec.scheduleId, action: 'created' });
    }
  }
  return results;
}

/**
 * Each declared schedule's state on the server: `active`, `paused`, `not applied` (the server
 * has none of that id), or `unknown (why)` when the server did not say (no right to describe
 * it, busy, out of reach): never taken for missing, which a check after an upgrade would act on.
 */
export async function scheduleStates(client: Pick<Client, 'schedule'>, config: Config): Promise<{ spec: ScheduleSpecEntry; state: string; known: boolean }[]> {
  const states = [];
  for (const spec of scheduleSpecs(config)) {
    const state = await client.schedule
      .getHandle(spec.scheduleId)
      .describe()
      .then(
        (d) => ({ state: d.state.paused ? 'paused' : 'active', known: true }),
        (err: unknown) => (err instanceof ScheduleNotFoundError ? { state: 'not applied', known: true } : { state: `unknown (${(err as Error).message})`, known: false }),
      );
    states.push({ spec, ...state });
  }
  return states;
}
