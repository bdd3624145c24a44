/**
 * Steps whose tries end by a timeout, on the stack's Temporal server: the worker's own
 * metric of failed steps never counts them (the try ends on the server), so the worker asks
 * Temporal for the running jobs' pending steps (step-attempts.ts), exports the tries in
 * `hunt_job_step_attempts` and logs a step that keeps timing out.
 */
import { Context } from '@temporalio/activity';
import type { MetricGauge, MetricTags } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { pendingStepAttempts, startStepAttemptsMonitor } from '../../src/worker/step-attempts';
import { useWorkflowEnvironment } from '../helpers/temporal';
import { uniqueName, waitFor } from '../helpers/wait';

const env = useWorkflowEnvironment('step-attempts');

/** A backfill whose import step never heartbeats: the server times each try out after 15 s. */
const silentImport = {
  describeBackfillSource: async () => ({ total: 1 }),
  importChunks: async () => {
    // Past the step's 15 s heartbeat timeout; ends early when the worker stops.
    await Context.current().sleep(60_000);
    throw new Error('not reached in the test');
  },
};

/** A gauge that keeps what it was last set to, by tags. */
function recordingGauge() {
  const values = new Map<string, number>();
  const gauge = {
    set: (value: number, tags: MetricTags = {}) => void values.set(JSON.stringify(tags), value),
  } as unknown as MetricGauge;
  return { gauge, values };
}

describe('steps whose tries end by a timeout', () => {
  it('are reported with the tries ended and how, in the gauge and the log, and the gauge goes back to 0 when the job ends', async () => {
    const lines: { msg: string; workflowId?: string; triesEnded?: number; lastFailure?: string }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const { gauge, values } = recordingGauge();
    await env.withWorker(silentImport, async (taskQueue) => {
      const workflowId = uniqueName('silent-backfill');
      const handle = await env.client.workflow.start('backfill', { taskQueue, workflowId, args: [{ source: { kind: 'file', path: '/data/archive.ndjson' } }] });
      // The second try is pending once the first timed out (15 s) and its retry's 1 s passed.
      const steps = await waitFor('a step tried once and timed out', async () => {
        const found = (await pendingStepAttempts(env.client, taskQueue)).steps;
        return found.length > 0 ? found : undefined;
      }, { timeoutMs: 40_000 });
      expect(steps).toEqual([
        expect.objectContaining({ workflowType: 'backfill', workflowId, activityType: 'importChunks', ended: 1, endedBy: 'timeout', lastFailure: expect.stringMatching(/timeout/i) }),
      ]);

      const monitor = startStepAttemptsMonitor({
        connect: async () => ({ client: env.client, close: async () => undefined }),
        taskQueue,
        gauge,
        logger,
        firstAfterMs: 0,
        everyMs: 200,
        logFromEnded: 1,
      });
      try {
        const tags = JSON.stringify({ workflow_type: 'backfill', activity_type: 'importChunks', ended_by: 'timeout' });
        await waitFor('the gauge set', () => values.get(tags) === 1, { timeoutMs: 10_000 });
        expect(lines.filter((l) => /a job step keeps timing out/.test(l.msg))).toEqual([expect.objectContaining({ workflowId, triesEnded: 1, lastFailure: expect.stringMatching(/timeout/i) })]);
        await handle.terminate('test over');
        await waitFor('the gauge back to 0', () => values.get(tags) === 0, { timeoutMs: 10_000 });
        // Logged once per step and count, not once per pass.
        expect(lines.filter((l) => /a job step keeps timing out/.test(l.msg))).toHaveLength(1);
      } finally {
        await monitor.stop();
      }
    });
  }, 90_000);
});

describe('the monitor of steps\' tries', () => {
  it('says when it last looked at every running job, and stops saying so while Temporal cannot be asked', async () => {
    // A failing pass sets hunt_job_step_attempts to 0 (a job ended meanwhile must not keep its
    // alert firing): without this gauge a monitor that can never ask silenced the alert unseen.
    const { gauge } = recordingGauge();
    const passes = recordingGauge();
    let failing = false;
    const client = new Proxy(env.client, {
      get: (target, name) =>
        name === 'workflow' && failing
          ? { list: () => { throw new Error('list workflows: PermissionDenied'); } }
          : Reflect.get(target, name),
    });
    const monitor = startStepAttemptsMonitor({
      connect: async () => ({ client, close: async () => undefined }),
      taskQueue: uniqueName('no-jobs'),
      gauge,
      passGauge: passes.gauge,
      logger: pino({ level: 'silent' }),
      firstAfterMs: 0,
      everyMs: 200,
    });
    try {
      const passAt = () => passes.values.get('{}');
      await waitFor('a pass over every running job', () => passAt() !== undefined, { timeoutMs: 10_000 });
      expect(Math.abs((passAt() as number) - Date.now() / 1000)).toBeLessThan(5);
      failing = true;
      await new Promise((resolve) => setTimeout(resolve, 1000)); // several passes, each failing
      const lastGood = passAt();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(passAt()).toBe(lastGood);
      failing = false;
      await waitFor('passes again', () => (passAt() as number) > (lastGood as number), { timeoutMs: 10_000 });
    } finally {
      await monitor.stop();
    }
  }, 30_000);
});

describe('steps whose earlier tries failed but whose current try heartbeats', () => {
  it('are not counted: they are getting on', async () => {
    let tries = 0;
    const recovering = {
      describeBackfillSource: async () => ({ total: 1 }),
      importChunks: async () => {
        tries++;
        if (tries === 1) {
          // The first try never heartbeats and is timed out by the server.
          await Context.current().sleep(60_000);
        }
        // The second heartbeats, as every long step does, until the test ends.
        for (;;) {
          Context.current().heartbeat();
          await Context.current().sleep(1000);
        }
      },
    };
    await env.withWorker(recovering, async (taskQueue) => {
      const handle = await env.client.workflow.start('backfill', { taskQueue, workflowId: uniqueName('recovering-backfill'), args: [{ source: { kind: 'file', path: '/data/archive.ndjson' } }] });
      try {
        await waitFor('the second try to heartbeat', () => tries === 2, { timeoutMs: 40_000 });
        // Its first heartbeat reaches the server within the SDK's throttle.
        await new Promise((resolve) => setTimeout(resolve, 3000));
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        expect(pending.map((p) => [p.attempt, p.lastFailure?.message])).toEqual([[2, expect.stringMatching(/timeout/i)]]);
        expect((await pendingStepAttempts(env.client, taskQueue)).steps).toEqual([]);
      } finally {
        await handle.terminate('test over');
      }
    });
  }, 90_000);
});
