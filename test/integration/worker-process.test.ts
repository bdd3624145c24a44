/**
 * `hunt worker` as operators run it: serves its task queue, exposes the SDK runtime's
 * Prometheus metrics on WORKER_METRICS_PORT, and stops cleanly on SIGTERM.
 */
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { uniqueName, waitFor } from '../helpers/wait';
import { startWorkerProcess, temporalClient } from '../helpers/worker';

const db = useTestDatabase();

describe('hunt worker', () => {
  it('runs jobs, serves Prometheus metrics on WORKER_METRICS_PORT, and exits 0 on SIGTERM', async () => {
    const taskQueue = uniqueName('worker-proc');
    const metricsPort = 18199;
    const worker = startWorkerProcess(db.url, taskQueue, { WORKER_METRICS_PORT: String(metricsPort) });
    const exited = new Promise<number | null>((resolve) => worker.child.once('exit', resolve));
    const { client, close } = await temporalClient();
    try {
      const result = await client.workflow.execute('healthCheck', { taskQueue, workflowId: uniqueName('worker-health'), args: [{}] });
      expect(result).toMatchObject({ checkedBy: 'hunt-batch worker' });

      const metrics = await waitFor('worker metrics with a completed workflow task', async () => {
        const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        return /temporal_workflow_task_execution_latency\w*\{[^}]*task_queue="/.test(text) && text.includes(taskQueue) ? text : undefined;
      });
      expect(metrics).toMatch(/temporal_activity_execution_latency/);
    } finally {
      await close();
      worker.child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
