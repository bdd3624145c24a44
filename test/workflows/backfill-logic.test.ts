/**
 * The backfill workflow's own logic, with its activities replaced by plain functions (no
 * Postgres, no Kafka, no files): continue-as-new carries the cursor and the counts into the
 * next run; pause and resume stop and restart the calls; bad input fails before any call.
 * TestWorkflowEnvironment on the stack's Temporal server.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { emptyCounts } from '../../src/batch/backfill/counts';
import type { ChunkBatchInput, ChunkBatchResult } from '../../src/batch/backfill/types';
import type { BackfillProgress } from '../../workflows/backfill';
import { firstRunContinuedAsNew, useWorkflowEnvironment } from '../helpers/temporal';
import { uniqueName, waitFor } from '../helpers/wait';

const env = useWorkflowEnvironment('backfill-logic');

/** Fake activities: a source of `chunks` chunks of one record; `gate` can hold a call. */
function fakeImport(chunks: number) {
  const calls: ChunkBatchInput[] = [];
  const described: unknown[] = [];
  let hold: Promise<void> | undefined;
  return {
    calls,
    described,
    holdCalls(promise: Promise<void> | undefined) {
      hold = promise;
    },
    activities: {
      describeBackfillSource: async (source: unknown) => {
        described.push(source);
        return { total: chunks };
      },
      importChunks: async (input: ChunkBatchInput): Promise<ChunkBatchResult> => {
        calls.push(input);
        if (hold) await hold;
        const line = (input.cursor.file?.line ?? 1) + 1;
        return { cursor: { file: { byteOffset: line - 1, line } }, counts: { ...emptyCounts(), records: 1, inserted: 1 }, done: line - 1 >= chunks, position: line - 1 };
      },
    },
  };
}

const fileInput = { source: { kind: 'file', path: '/data/archive.ndjson' }, chunkSize: 1 };

describe('backfill workflow logic', () => {
  it('continues as new after 200 activity calls, carrying the cursor and the counts', async () => {
    const fake = fakeImport(205);
    const result = await env.withWorker(fake.activities, async (taskQueue) => {
      const handle = await env.client.workflow.start('backfill', { taskQueue, workflowId: uniqueName('backfill-can'), args: [fileInput] });
      const progress = (await handle.result()) as BackfillProgress;
      return { progress, continuedAsNew: await firstRunContinuedAsNew(env.client, handle) };
    });
    expect(result.continuedAsNew).toBe(true);
    expect(result.progress).toMatchObject({ state: 'completed', done: 205, total: 205, counts: { records: 205, inserted: 205 } });
    // The second run resumed where the first stopped: every chunk was asked for once, in order.
    expect(fake.calls.map((c) => c.cursor.file?.line)).toEqual(Array.from({ length: 205 }, (_, i) => i + 1));
  });

  it('continues as new before 200 calls once its history passes 2 MB: a cursor over thousands of partitions grew it past its limits', async () => {
    // Each call's input and result repeat the cursor and the range (4 maps of every
    // partition): with 1,000 partitions about 85 KB a call, 17 MB in 200 calls (3,000
    // partitions reached the 50 MB at which the server ends a run).
    const partitions = 1_000;
    const offsets = (at: number) => Object.fromEntries(Array.from({ length: partitions }, (_, p) => [String(p), String(1_000_000_000_000 + at)]));
    const calls: ChunkBatchInput[] = [];
    const activities = {
      describeBackfillSource: async () => ({ total: 0 }),
      importChunks: async (input: ChunkBatchInput): Promise<ChunkBatchResult> => {
        calls.push(input);
        return { cursor: { kafka: offsets(calls.length) }, counts: { ...emptyCounts(), records: 1 }, done: calls.length >= 40, position: calls.length };
      },
    };
    const carried = { cursor: { kafka: offsets(0) }, counts: emptyCounts(), total: 40, position: 0, range: { start: offsets(0), end: offsets(40) }, startedAtMs: Date.now() };
    const input = { source: { kind: 'kafka', topic: 'hunt.events' }, chunkSize: 1 };
    const continuedAsNew = await env.withWorker(activities, async (taskQueue) => {
      const handle = await env.client.workflow.start('backfill', { taskQueue, workflowId: uniqueName('backfill-big-cursor'), args: [input, carried] });
      await handle.result();
      return firstRunContinuedAsNew(env.client, handle);
    });
    expect(calls).toHaveLength(40);
    expect(continuedAsNew).toBe(true);
  });

  it('goes on, continued as new, with a time the strict check came after (a job begun on older code), and refuses it for a new job', async () => {
    // Before the strict check, a time was anything Date.parse takes: such a job, continued as
    // new on newer code, goes on as it began instead of failing halfway.
    const fake = fakeImport(3);
    const input = { source: { kind: 'kafka', topic: 'hunt.events', from: '2026-11-21T00:00:00' }, chunkSize: 1 };
    const carried = { cursor: { kafka: { '0': '0' } }, counts: emptyCounts(), total: 3, position: 0, range: { start: { '0': '0' }, end: { '0': '3' } }, startedAtMs: Date.now() };
    const progress = await env.withWorker(fake.activities, async (taskQueue) => {
      const continued = await env.client.workflow.start('backfill', { taskQueue, workflowId: uniqueName('backfill-old-time'), args: [input, carried] });
      return (await continued.result()) as BackfillProgress;
    });
    expect(progress).toMatchObject({ state: 'completed' });
    expect(fake.calls.length).toBeGreaterThan(0);
    const refused = await env.withWorker(fakeImport(3).activities, async (taskQueue) =>
      env.client.workflow.execute('backfill', { taskQueue, workflowId: uniqueName('backfill-new-time'), args: [input] }).catch((err: unknown) => err),
    );
    expect(refused).toBeInstanceOf(WorkflowFailedError);
    expect(String((refused as WorkflowFailedError).cause?.message)).toMatch(/from must be an ISO-8601 time/);
  });

  it('pauses after the call in flight and resumes where it stopped', async () => {
    const fake = fakeImport(40);
    let release: () => void = () => undefined;
    fake.holdCalls(new Promise<void>((resolve) => (release = resolve)));
    const progress = await env.withWorker(fake.activities, async (taskQueue) => {
      const handle = await env.client.workflow.start('backfill', { taskQueue, workflowId: uniqueName('backfill-pause'), args: [fileInput] });
      await waitFor('the first call', () => fake.calls.length === 1);
      await handle.signal('pause');
      release();
      fake.holdCalls(undefined);
      const paused = await waitFor('the job to report itself paused', async () => {
        const p = await handle.query<BackfillProgress>('progress');
        return p.state === 'paused' && p.done === 1 ? p : undefined;
      });
      const callsWhilePaused = fake.calls.length;
      // Queried again a while later: still paused, and no call made meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect((await handle.query<BackfillProgress>('progress')).state).toBe('paused');
      expect(fake.calls.length).toBe(callsWhilePaused);
      expect(paused.done).toBe(1);
      await handle.signal('resume');
      return (await handle.result()) as BackfillProgress;
    });
    expect(progress).toMatchObject({ state: 'completed', done: 40, counts: { records: 40 } });
    expect(fake.calls).toHaveLength(40);
  });

  it.each([
    [{}, /source is required/],
    [{ source: { kind: 'file', path: 'relative.ndjson' } }, /source\.path must be an absolute path/],
    [{ source: { kind: 'kafka', topic: 'bad topic!' } }, /source\.topic must be a Kafka topic name/],
    [{ source: { kind: 'kafka', topic: 't', from: '2026-02-30' } }, /from must be an ISO-8601 time .*no such date/],
    [{ ...fileInput, chunkSize: 0 }, /chunkSize must be a whole number from 1 to 50000/],
    [{ ...fileInput, limit: 5 }, /unknown field\(s\) limit/],
    // A misspelt or misplaced field inside source would import the whole topic or file.
    [{ source: { kind: 'kafka', topic: 't', From: '2026-11-21T00:00:00Z' } }, /unknown field\(s\) source\.From; allowed: source\.kind, source\.topic, source\.from, source\.to/],
    [{ source: { kind: 'file', path: '/data/events.ndjson', huntId: 'h1' } }, /unknown field\(s\) source\.huntId; allowed: source\.kind, source\.path/],
  ])('fails %j at once, naming the fix, before any activity runs', async (input, message) => {
    const fake = fakeImport(1);
    const failure = await env.withWorker(fake.activities, (taskQueue) =>
      env.client.workflow.execute('backfill', { taskQueue, workflowId: uniqueName('backfill-bad'), args: [input as never] }).catch((err: unknown) => err),
    );
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect((failure as WorkflowFailedError).cause?.message).toMatch(message);
    expect(fake.calls).toHaveLength(0);
    expect(fake.described).toHaveLength(0);
  });
});
