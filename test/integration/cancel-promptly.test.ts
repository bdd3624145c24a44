/**
 * An operator's cancel reaches a running step within seconds. A step hears of it only in the
 * answer to a heartbeat, and the SDK held heartbeats back for 80% of the heartbeat timeout:
 * a reconcile (60 s) went on reconciling for up to 48 s after the job was cancelled, often to
 * the end of its scope. A real `hunt worker` process, as operators run it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { storeEventsInOrder } from '../helpers/stored-events';
import { uniqueName, waitFor } from '../helpers/wait';
import { startWorkerProcess, temporalClient, type WorkerProcess } from '../helpers/worker';

const HUNTS = 4_000;
const db = useTestDatabase();
let temporal: Awaited<ReturnType<typeof temporalClient>>;
let worker: WorkerProcess;
const taskQueue = uniqueName('cancel-promptly');

beforeAll(async () => {
  const at = Date.now() - 3_600_000;
  await storeEventsInOrder(db.pool, Array.from({ length: HUNTS }, (_, i) =>
    clueFound({ eventId: `e-${i}`, huntId: `hunt-${String(i).padStart(5, '0')}`, playerId: 'ann', clueId: 'c1', points: 5, occurredAt: new Date(at + i).toISOString() })));
  temporal = await temporalClient();
  worker = startWorkerProcess(db.url, taskQueue);
});

afterAll(async () => {
  await worker?.kill('SIGKILL');
  await temporal?.close();
});

const huntsReconciled = async () => Number((await db.pool.query('SELECT count(*) AS n FROM reconcile_runs')).rows[0].n);

describe('cancelling a running job', () => {
  it('stops its step within seconds, not at the end of its scope', { timeout: 120_000 }, async () => {
    // One hunt per transaction: thousands of small steps, far more than a few seconds' work.
    const handle = await temporal.client.workflow.start('reconcile', {
      taskQueue,
      workflowId: uniqueName('reconcile'),
      args: [{ repair: false, huntsPerTransaction: 1, settleMs: 0 }],
    });
    await waitFor('reconcile to be under way', async () => (await huntsReconciled()) >= 20, { timeoutMs: 60_000, intervalMs: 50 });
    await handle.cancel();
    const cancelledAt = Date.now();
    const atCancel = await huntsReconciled();

    // The SDK sends a heartbeat at most every 2 s now; the step stops at its next group. It
    // has stopped once two seconds pass without a hunt reconciled (a running step does dozens
    // a second; one second of none can be a busy machine's pause).
    let soonAfter = atCancel;
    let quietSeconds = 0;
    await waitFor('the step to stop', async () => {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const now = await huntsReconciled();
      quietSeconds = now === soonAfter ? quietSeconds + 1 : 0;
      soonAfter = now;
      return quietSeconds >= 2;
    }, { timeoutMs: 40_000, intervalMs: 0 });
    const stoppedWithinMs = Date.now() - cancelledAt;
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const later = await huntsReconciled();
    console.info(`reconciled at the cancel ${atCancel}, once stopped (${stoppedWithinMs} ms) ${soonAfter}, 5 s later ${later} of ${HUNTS}`);
    // Before, it ran on for up to 48 s.
    expect(stoppedWithinMs).toBeLessThan(15_000);
    expect(later).toBe(soonAfter);
    expect(later).toBeLessThan(HUNTS);
  });
});
