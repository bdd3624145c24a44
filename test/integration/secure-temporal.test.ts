/**
 * Temporal over TLS, for real. The dev server has no TLS of its own, so Debian's haproxy
 * stands in front of it (test/helpers/tls-proxy.ts) with two doors: mTLS (a client
 * certificate signed by the test CA required) and TLS plus an API key. `hunt worker` serves
 * a task queue through the mTLS door; the project's client runs a job through either door;
 * wrong settings stop the worker with what to fix.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, projectRoot } from '../../src/config';
import { connectClient } from '../../src/temporal/client';
import { useTestDatabase } from '../helpers/database-fixture';
import { freePort, runHunt } from '../helpers/hunt-command';
import { createTestCa, type TestCa } from '../helpers/test-ca';
import { startTemporalTlsProxy, type TlsProxy } from '../helpers/tls-proxy';
import { uniqueName, waitFor } from '../helpers/wait';
import { startWorkerProcess, type WorkerProcess } from '../helpers/worker';

const dir = path.join(projectRoot, '.hunt', 'test-stacks', uniqueName('tls-temporal'));
const API_KEY = 'temporal-Key-e5F6g7';

let ca: TestCa;
let proxy: TlsProxy;
const db = useTestDatabase();
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  ca = await createTestCa(path.join(dir, 'ca'));
  proxy = await startTemporalTlsProxy({
    dir: path.join(dir, 'haproxy'),
    ca,
    target: loadConfig().temporal.address,
    ports: { mtls: await freePort(), apiKey: await freePort() },
    apiKey: API_KEY,
  });
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await proxy?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function mtlsEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: proxy.mtlsAddress,
    TEMPORAL_TLS_CA_FILE: ca.caFile,
    TEMPORAL_TLS_CERT_FILE: ca.client.cert,
    TEMPORAL_TLS_KEY_FILE: ca.client.key,
    // Dialled as 127.0.0.1, checked for the name the certificate carries.
    TEMPORAL_TLS_SERVER_NAME: 'localhost',
    ...overrides,
  };
}

function apiKeyEnv(key = API_KEY): Record<string, string> {
  const keyFile = path.join(dir, `api-key-${key.length}-${key.slice(0, 3)}`);
  fs.writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  return { TEMPORAL_ADDRESS: proxy.apiKeyAddress, TEMPORAL_TLS_CA_FILE: ca.caFile, TEMPORAL_TLS_SERVER_NAME: 'localhost', TEMPORAL_API_KEY_FILE: keyFile };
}

describe('Temporal over TLS', () => {
  it('serves a task queue with hunt worker over mTLS; clients run jobs over mTLS and with an API key', async () => {
    const taskQueue = uniqueName('tls-queue');
    const worker: WorkerProcess = startWorkerProcess(db.url, taskQueue, mtlsEnv());
    cleanups.push(() => worker.kill('SIGKILL'));

    for (const env of [mtlsEnv(), apiKeyEnv()]) {
      const { client, close } = await connectClient(loadConfig({ ...process.env, ...env }));
      try {
        const result = await client.workflow.execute('healthCheck', { taskQueue, workflowId: uniqueName('tls-health'), args: [{}] });
        expect(result).toMatchObject({ checkedBy: 'hunt-batch worker' });
      } finally {
        await close();
      }
    }

    // The job commands take the same settings.
    const listed = await waitFor('hunt jobs to list the two runs', async () => {
      const run = await runHunt(['jobs'], { ...apiKeyEnv(), TEMPORAL_TASK_QUEUE: taskQueue });
      return (run.output.match(/healthCheck\s+COMPLETED/g) ?? []).length === 2 && run;
    });
    expect(listed.code).toBe(0);
    expect(listed.output).not.toContain(API_KEY);
    expect(fs.readFileSync(worker.logFile, 'utf8')).toContain('worker running');
  });

  it.each([
    ['without a client certificate', () => mtlsEnv({ TEMPORAL_TLS_CERT_FILE: '', TEMPORAL_TLS_KEY_FILE: '' }), 'the Temporal endpoint wants a client certificate: set TEMPORAL_TLS_CERT_FILE'],
    ['with a certificate from another CA', () => mtlsEnv({ TEMPORAL_TLS_CERT_FILE: ca.strangerClient.cert, TEMPORAL_TLS_KEY_FILE: ca.strangerClient.key }), 'the Temporal endpoint refused the client certificate'],
    ["without the server's CA", () => mtlsEnv({ TEMPORAL_TLS_CA_FILE: '' }), "Temporal's TLS certificate is not signed by a trusted CA: set TEMPORAL_TLS_CA_FILE"],
    ['with a wrong API key', () => apiKeyEnv('wrong-Key-h8I9j0'), 'Temporal refused the credentials: check TEMPORAL_API_KEY'],
  ])('stops hunt worker %s, saying what to set', async (_case, env, message) => {
    const run = await runHunt(['worker'], { ...env(), DATABASE_URL: db.url, TEMPORAL_TASK_QUEUE: uniqueName('refused'), WORKER_METRICS_PORT: String(await freePort()) }, 60_000);
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(1);
    expect(run.output).toContain(message);
    expect(run.output).not.toContain('wrong-Key-h8I9j0');
  });
});
