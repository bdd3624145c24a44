/**
 * `hunt worker` as operators run it: serves its task queue, exposes the SDK runtime's
 * Prometheus metrics on WORKER_METRICS_PORT, stops cleanly on SIGTERM, waits for a
 * Temporal it cannot reach at start-up instead of exiting, and refuses a namespace without
 * the jobs' search attributes.
 */
import fs from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { msToTs } from '@temporalio/common/lib/time';
import { loadConfig } from '../../src/config';
import { forwardPort, freePort } from '../helpers/tcp-forward';
import { useTestDatabase } from '../helpers/database-fixture';
import { uniqueName, waitFor } from '../helpers/wait';
import { startWorkerProcess, temporalClient, type WorkerProcess } from '../helpers/worker';

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
      // The step monitor's start counts as a pass (HuntJobStepsUnwatched reads it), by this name.
      expect(metrics).toMatch(/^hunt_job_step_attempts_pass_seconds(\{[^}]*\})? \d{10}$/m);

    } finally {
      await close();
      worker.child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

describe('hunt worker started while Temporal cannot be reached', () => {
  it('waits for it, then serves its task queue', { timeout: 120_000 }, async () => {
    const taskQueue = uniqueName('worker-late');
    const port = await freePort();
    const worker = startWorkerProcess(db.url, taskQueue, { TEMPORAL_ADDRESS: `127.0.0.1:${port}` });
    const log = () => fs.readFileSync(worker.logFile, 'utf8');
    let forwarder: { close(): Promise<void> } | undefined;
    const { client, close } = await temporalClient();
    try {
      const waits = () => log().split('\n').filter((line) => line.includes('Temporal cannot be reached; waiting for it')).length;
      await waitFor('two waits for Temporal in the log', () => waits() >= 2 || worker.child.exitCode !== null, { timeoutMs: 30_000, intervalMs: 200 });
      // Before, the worker exited at the first refused connection.
      expect(worker.child.exitCode, `hunt worker exited while Temporal was unreachable:\n${log().slice(-2000)}`).toBeNull();

      forwarder = await forwardPort(port, loadConfig({}).temporal.address);
      const result = await client.workflow.execute('healthCheck', { taskQueue, workflowId: uniqueName('worker-late-health'), args: [{}], workflowExecutionTimeout: '60 seconds' });
      expect(result).toMatchObject({ checkedBy: 'hunt-batch worker' });
    } finally {
      await close();
      await worker.kill('SIGKILL');
      await forwarder?.close();
    }
  });
});

describe('hunt worker asked to stop while it waits for Temporal', () => {
  it('stops at once, even in the middle of a connection attempt that gets no answer', { timeout: 60_000 }, async () => {
    // Takes connections and never answers: each attempt waits some 30 s inside the SDK.
    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const worker = startWorkerProcess(db.url, uniqueName('worker-stop-waiting'), { TEMPORAL_ADDRESS: `127.0.0.1:${(silent.address() as net.AddressInfo).port}` });
    const exited = new Promise<number | null>((resolve) => worker.child.once('exit', resolve));
    try {
      await waitFor('the worker to start connecting', () => new Promise<boolean>((resolve) => silent.getConnections((_, n) => resolve(n > 0))), { timeoutMs: 20_000, intervalMs: 100 });
      worker.child.kill('SIGTERM');
      // Before, the SDK's runtime took the signal and only noted it: the worker ran on, and polled once Temporal answered.
      const code = await Promise.race([exited, new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 10_000))]);
      expect(code, fs.readFileSync(worker.logFile, 'utf8').slice(-2000)).toBe(0);
    } finally {
      await worker.kill('SIGKILL');
      silent.close();
    }
  });
});

describe('hunt worker in a namespace without the jobs\' search attributes', () => {
  it('refuses to start, naming them and how to add them', { timeout: 60_000 }, async () => {
    // Every job upserts them: in such a namespace each job's workflow tasks failed for ever
    // while it showed "Running". Registered once and never given the attributes.
    const namespace = 'hunt-test-no-attributes';
    const { client, close } = await temporalClient();
    try {
      await client.workflowService
        .registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') })
        .catch((err: { code?: number }) => {
          if (err.code !== 6) throw err; // ALREADY_EXISTS
        });
      await waitFor('the namespace to be served', () => client.workflowService.describeNamespace({ namespace }).then(() => true, () => false), { timeoutMs: 30_000, intervalMs: 500 });
    } finally {
      await close();
    }
    const worker = startWorkerProcess(db.url, uniqueName('worker-bare-namespace'), { TEMPORAL_NAMESPACE: namespace });
    try {
      const log = await refusal(worker);
      expect(log).toContain(`the Temporal namespace ${namespace} lacks the search attributes HuntJobKind, HuntId`);
      expect(log).toContain(`temporal operator search-attribute create --namespace ${namespace} --name HuntJobKind --type Keyword`);
    } finally {
      await worker.kill('SIGKILL');
    }
  });
});

describe('hunt worker whose metrics port is taken', () => {
  it('refuses to start, naming WORKER_METRICS_PORT and the port', async () => {
    const port = await freePort();
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    const worker = startWorkerProcess(db.url, uniqueName('worker-port-taken'), { WORKER_METRICS_PORT: String(port) });
    try {
      const log = await refusal(worker);
      // The runtime's own words named neither the setting nor the port.
      expect(log).toContain(`WORKER_METRICS_PORT ${port} on 127.0.0.1 cannot be served`);
    } finally {
      await worker.kill('SIGKILL');
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

/** The log of a worker that refused to start: it must exit non-zero within 30 s. */
async function refusal(worker: WorkerProcess): Promise<string> {
  const exited = new Promise<number | null>((resolve) => worker.child.once('exit', resolve));
  const code = await Promise.race([exited, new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 30_000))]);
  const log = fs.readFileSync(worker.logFile, 'utf8');
  expect(code, log.slice(-2000)).not.toBe('running');
  expect(code, log.slice(-2000)).not.toBe(0);
  return log;
}
