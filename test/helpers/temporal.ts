import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll } from 'vitest';
import { loadConfig, projectRoot } from '../../src/config';
import { uniqueName } from './wait';

/** Keeps the worker's own INFO chatter out of test output (warnings still show). */
export function quietTemporalRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Already installed in this process: nothing to do.
  }
}

/**
 * For tests of a workflow's own logic: a TestWorkflowEnvironment on the stack's Temporal
 * server (set up before the file's tests, torn down after), and `withWorker`, which runs the
 * project's workflows on a task queue of their own with the activities the test gives.
 */
export function useWorkflowEnvironment(taskQueuePrefix: string) {
  const config = loadConfig();
  let env: TestWorkflowEnvironment | undefined;
  beforeAll(async () => {
    quietTemporalRuntime();
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: config.temporal.address, namespace: config.temporal.namespace });
  });
  afterAll(async () => {
    await env?.teardown();
  });
  const current = (): TestWorkflowEnvironment => {
    if (!env) throw new Error('useWorkflowEnvironment(): the environment exists only between beforeAll and afterAll');
    return env;
  };
  return {
    get client() {
      return current().client;
    },
    async withWorker<T>(activities: object, run: (taskQueue: string) => Promise<T>): Promise<T> {
      const taskQueue = uniqueName(taskQueuePrefix);
      const worker = await Worker.create({
        connection: current().nativeConnection,
        namespace: config.temporal.namespace,
        taskQueue,
        workflowsPath: path.join(projectRoot, 'workflows/index.ts'),
        activities,
      });
      return worker.runUntil(run(taskQueue));
    },
  };
}

/** Whether the first run of the handle's workflow ended by continuing as new. */
export async function firstRunContinuedAsNew(client: TestWorkflowEnvironment['client'], handle: WorkflowHandle & { firstExecutionRunId: string }): Promise<boolean> {
  const history = await client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).fetchHistory();
  return history.events?.[history.events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes != null;
}
