/**
 * dlqReplay across a graceful worker shutdown (what every deploy does), on the real
 * Postgres and Temporal: the SDK aborts the running replay, and the run must go on from the
 * heartbeated cursor on the next worker, not end as a success with rows left unreplayed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound } from '../helpers/event-builders';
import { uniqueName, waitFor } from '../helpers/wait';
import { startInProcessWorker, temporalClient } from '../helpers/worker';

const db = useTestDatabase();
const taskQueue = uniqueName('dlq-shutdown');
const ROWS = 1500;

let client: Awaited<ReturnType<typeof temporalClient>> | undefined;
beforeAll(async () => {
  client = await temporalClient();
});
afterAll(async () => {
  await client?.close();
});

const replayedRows = async () => (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM quarantine WHERE replayed_at IS NOT NULL')).rows[0]!.n;

describe('dlqReplay, its worker stopped mid-run', () => {
  it('resumes on the next worker and replays every row', async () => {
    // Records quarantined as too early whose time has come: each is valid on replay.
    const occurredAt = new Date(Date.now() - 60_000).toISOString();
    const values = Array.from({ length: ROWS }, (_, i) =>
      JSON.stringify(clueFound({ eventId: `late-${i}`, huntId: 'h1', playerId: `p${i % 50}`, clueId: `c${i}`, points: 1, occurredAt })),
    );
    await db.pool.query(
      `INSERT INTO quarantine (source_topic, source_partition, source_offset, record_value, reason, detail)
       SELECT 't', 0, o, convert_to(v, 'UTF8'), 'future_timestamp', 'too early'
         FROM unnest($1::text[]) WITH ORDINALITY AS x(v, o)`,
      [values],
    );

    const first = await startInProcessWorker(db.pool, taskQueue);
    const handle = await client!.client.workflow.start('dlqReplay', { taskQueue, workflowId: uniqueName('dlq-replay'), args: [{ batchSize: 5 }] });
    let second: Awaited<ReturnType<typeof startInProcessWorker>> | undefined;
    try {
      await waitFor('the replay to be under way', async () => (await replayedRows()) >= 50, { timeoutMs: 60_000, intervalMs: 20 });
      // A graceful shutdown: the SDK aborts the running activity (shutdownGraceTime 0 here).
      await first.stop();
      expect(await replayedRows()).toBeLessThan(ROWS);

      second = await startInProcessWorker(db.pool, taskQueue);
      const result = await handle.result();
      expect(await replayedRows()).toBe(ROWS);
      expect(result).toMatchObject({ examined: ROWS, replayed: ROWS, duplicates: 0 });
      expect((await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events')).rows[0]!.n).toBe(ROWS);
    } finally {
      await first.stop().catch(() => undefined);
      await second?.stop();
    }
  }, 120_000);
});
