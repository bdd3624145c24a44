/**
 * A batch-plane fixture: `const batch = useInProcessWorker(db, 'dq')` after useTestDatabase()
 * registers the hooks that start a Temporal client and a worker in this process on a task
 * queue of the suite's own, with activities on the suite's database, and stop both after.
 */
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll } from 'vitest';
import type { TestDatabaseHandle } from './database-fixture';
import { uniqueName } from './wait';
import { startInProcessWorker, temporalClient } from './worker';

export interface InProcessBatchPlane {
  readonly taskQueue: string;
  /** Exists between the suite's beforeAll and afterAll. */
  readonly client: Client;
}

export function useInProcessWorker(db: TestDatabaseHandle, queuePrefix: string): InProcessBatchPlane {
  const taskQueue = uniqueName(queuePrefix);
  let client: Client | undefined;
  let closeClient: (() => Promise<void>) | undefined;
  let stopWorker: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ client, close: closeClient } = await temporalClient());
    ({ stop: stopWorker } = await startInProcessWorker(db.pool, taskQueue));
  });
  afterAll(async () => {
    await stopWorker?.();
    await closeClient?.();
  });
  return {
    taskQueue,
    get client() {
      if (!client) throw new Error('useInProcessWorker(): the client exists only between beforeAll and afterAll');
      return client;
    },
  };
}
