/**
 * Where a finished workflow's time went, from its history: time inside activities
 * (ActivityTaskStarted → Completed) versus everything else, which is Temporal's part
 * (starting the run, workflow tasks, dispatching activities, recording results). Measured
 * inside one run, this share does not depend on comparing two runs on a noisy machine.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { round } from './procfs';

export interface WorkflowTiming {
  historyEvents: number;
  activities: number;
  /** WorkflowExecutionStarted → the closing event. */
  workflowSeconds: number;
  /** Sum over activity calls of started → completed (or failed, timed out). */
  activitySeconds: number;
  /** Sum over activity calls of scheduled → started: waiting for dispatch to the worker. */
  scheduleToStartSeconds: number;
}

export async function workflowTiming(handle: WorkflowHandle): Promise<WorkflowTiming> {
  const events = (await handle.fetchHistory()).events ?? [];
  const at = (e: (typeof events)[number]) => tsToMs(e.eventTime);
  const scheduled = new Map<string, number>();
  const started = new Map<string, number>();
  let activitySeconds = 0;
  let scheduleToStartSeconds = 0;
  let activities = 0;
  for (const e of events) {
    const id = String(e.eventId);
    if (e.activityTaskScheduledEventAttributes) {
      scheduled.set(id, at(e));
      activities++;
    }
    const start = e.activityTaskStartedEventAttributes;
    if (start) {
      const key = String(start.scheduledEventId);
      started.set(key, at(e));
      scheduleToStartSeconds += (at(e) - (scheduled.get(key) ?? at(e))) / 1000;
    }
    const end = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes;
    if (end) {
      const key = String(end.scheduledEventId);
      activitySeconds += (at(e) - (started.get(key) ?? at(e))) / 1000;
    }
  }
  const first = events[0];
  const last = events[events.length - 1];
  return {
    historyEvents: events.length,
    activities,
    workflowSeconds: first && last ? round((at(last) - at(first)) / 1000, 3) : 0,
    activitySeconds: round(activitySeconds, 3),
    scheduleToStartSeconds: round(scheduleToStartSeconds, 3),
  };
}
