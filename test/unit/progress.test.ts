/**
 * Job progress in the terminal: snapshots from what jobs report, rendered as a bar with
 * rate and ETA on a terminal and as plain lines otherwise; the backfill command's source.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { emptyCounts } from '../../src/batch/backfill/counts';
import { snapshotOf } from '../../src/cli/job-progress';
import { jobResult, observeJob, retryingStep } from '../../src/cli/job-watch';
import { backfillSource } from '../../src/cli/jobs';
import { registerSecret } from '../../src/redact';
import { createProgressPrinter, formatAmount, formatDuration, RateTracker, renderBarLine, renderPlainLine, type ProgressSnapshot } from '../../src/cli/progress';

const fileBackfill = {
  state: 'running',
  dryRun: false,
  done: 10_000_000,
  total: 25_000_000,
  percent: 40,
  rate: 20_000,
  cursor: { file: { byteOffset: 10_000_000, line: 50_001 } },
  counts: { ...emptyCounts(), records: 50_000, inserted: 49_990, duplicates: 7, rejected: 3, rejectedByReason: { schema_violation: 3 } },
};

describe('renderBarLine', () => {
  const snapshot: ProgressSnapshot = {
    job: 'backfill',
    phase: 'running',
    done: 10_000_000,
    total: 25_000_000,
    unit: 'bytes',
    rate: { perSecond: 20_000, unit: 'records/s' },
    etaSeconds: 37.5,
    detail: 'inserted 49990, duplicates 7, rejected 3',
  };

  it('draws a bar, the share, done of total, the rate, the ETA and the detail', () => {
    expect(renderBarLine(snapshot, 200)).toBe(
      'backfill  [██████████░░░░░░░░░░░░░░]   40.0%  10.0 MB / 25.0 MB  20,000 records/s  ETA 0:38  inserted 49990, duplicates 7, rejected 3',
    );
  });

  it('fits the terminal: the detail is cut first, then the bar shrinks, then it goes; the line never wraps', () => {
    expect(renderBarLine(snapshot, 110)).toBe('backfill  [██████████░░░░░░░░░░░░░░]   40.0%  10.0 MB / 25.0 MB  20,000 records/s  ETA 0:38  inserted 49990,…');
    expect(renderBarLine(snapshot, 80)).toBe('backfill  [█████░░░░░░░]   40.0%  10.0 MB / 25.0 MB  20,000 records/s  ETA 0:38');
    expect(renderBarLine(snapshot, 70)).toBe('backfill   40.0%  10.0 MB / 25.0 MB  20,000 records/s  ETA 0:38');
    expect(renderBarLine(snapshot, 30)).toHaveLength(29);
  });

  it('names a phase other than running, and shows no bar while the size is unknown', () => {
    expect(renderBarLine({ job: 'reprocess', phase: 'preparing', done: 0, unit: 'hunts', elapsedSeconds: 3 })).toBe('reprocess (preparing)  0 hunts  0:03 elapsed');
  });

  it('keeps done and total in one scale', () => {
    expect(formatAmount(980_000, 'bytes', 1_200_000)).toBe('1.0 MB');
    expect(formatAmount(512, 'bytes')).toBe('512 B');
    expect(formatAmount(1234, 'records')).toBe('1,234 records');
  });
});

describe('renderPlainLine', () => {
  it('says the same in a line for logs', () => {
    expect(
      renderPlainLine({ job: 'reconcile', phase: 'reconciling', done: 120, total: 400, unit: 'hunts', rate: { perSecond: 12.4, unit: 'hunts/s' }, etaSeconds: 22.6, detail: 'repair' }),
    ).toBe('reconcile reconciling: 30.0%, 120 hunts of 400 hunts, 12 hunts/s, ETA 0:23; repair');
    expect(renderPlainLine({ job: 'rollupFlush', done: 0, phase: 'running', elapsedSeconds: 75 })).toBe('rollupFlush running: 1:15 elapsed');
  });
});

describe('formatDuration', () => {
  it('reads as m:ss, or h:mm:ss past an hour', () => {
    expect([0, 41, 61, 3725].map(formatDuration)).toEqual(['0:00', '0:41', '1:01', '1:02:05']);
  });
});

describe('RateTracker', () => {
  it('measures the recent pace and the time left at it', () => {
    const tracker = new RateTracker(30_000);
    tracker.add(0, 0);
    expect(tracker.perSecond()).toBeUndefined();
    tracker.add(10_000, 1000);
    tracker.add(20_000, 2000);
    expect(tracker.perSecond()).toBe(100);
    expect(tracker.etaSeconds(5000)).toBe(30);
    // Older samples leave the window: the pace follows the job's current speed.
    tracker.add(50_000, 2300);
    tracker.add(60_000, 2400);
    expect(tracker.perSecond()).toBe(10);
    expect(tracker.etaSeconds(undefined)).toBeUndefined();
  });

  it('gives no ETA when nothing moves', () => {
    const tracker = new RateTracker();
    tracker.add(0, 5);
    tracker.add(5000, 5);
    expect(tracker.etaSeconds(10)).toBeUndefined();
  });
});

describe('createProgressPrinter', () => {
  const snapshot = (done: number, phase = 'running'): ProgressSnapshot => ({ job: 'reprocess', phase, done, total: 10, unit: 'hunts' });

  it('redraws one line in place on a terminal, and ends it when done', () => {
    const written: string[] = [];
    const printer = createProgressPrinter({ isTTY: true, columns: 80, write: (t) => written.push(t) });
    printer.update(snapshot(1));
    printer.update(snapshot(2));
    printer.finish();
    expect(written).toHaveLength(3);
    const CLEAR_TO_END = '\x1b[K';
    expect(written[0]?.startsWith('\r') && written[0].endsWith(`1 hunts / 10 hunts${CLEAR_TO_END}`)).toBe(true);
    expect(written[1]?.startsWith('\r') && written[1].endsWith(`2 hunts / 10 hunts${CLEAR_TO_END}`)).toBe(true);
    expect(written[2]).toBe('\n');
  });

  it('takes a common width when a pseudo-terminal reports 0 columns', () => {
    const written: string[] = [];
    createProgressPrinter({ isTTY: true, columns: 0, write: (t) => written.push(t) }).update(snapshot(3));
    expect(written[0]).toBe('\rreprocess  [███████░░░░░░░░░░░░░░░░░]   30.0%  3 hunts / 10 hunts\x1b[K');
  });

  it('prints plain lines every few seconds otherwise, and at once when the phase changes', () => {
    const written: string[] = [];
    let now = 0;
    const printer = createProgressPrinter({ write: (t) => written.push(t) }, { plainEveryMs: 5000, now: () => now });
    for (now = 0; now <= 12_000; now += 1000) printer.update(snapshot(now / 1000));
    printer.update(snapshot(10, 'swapping'));
    printer.finish();
    expect(written).toEqual([
      'reprocess running: 0.0%, 0 hunts of 10 hunts\n',
      'reprocess running: 50.0%, 5 hunts of 10 hunts\n',
      'reprocess running: 100.0%, 10 hunts of 10 hunts\n',
      'reprocess swapping: 100.0%, 10 hunts of 10 hunts\n',
    ]);
  });
});

describe('snapshotOf', () => {
  it('backfill from a file: bytes of the file, records/s, an ETA in bytes at the bytes a record takes', () => {
    const s = snapshotOf({ workflowType: 'backfill', query: fileBackfill });
    // 200 bytes a record at 20,000 records/s: 4 MB/s; 15 MB left: 3.75 s.
    expect(s).toMatchObject({ job: 'backfill', phase: 'running', done: 10_000_000, total: 25_000_000, unit: 'bytes', rate: { perSecond: 20_000, unit: 'records/s' } });
    expect(s.etaSeconds).toBeCloseTo(3.75, 9);
    expect(s.detail).toBe('inserted 49990, duplicates 7, rejected 3 (schema_violation 3)');
  });

  it('backfill from Kafka: records of the range; no ETA while paused; a dry run says so', () => {
    const kafka = { ...fileBackfill, done: 600, total: 1000, rate: 100, cursor: { kafka: { '0': '600' } } };
    expect(snapshotOf({ workflowType: 'backfill', query: kafka })).toMatchObject({ unit: 'records', etaSeconds: 4 });
    expect(snapshotOf({ workflowType: 'backfill', query: { ...kafka, state: 'paused' } }).etaSeconds).toBeUndefined();
    expect(snapshotOf({ workflowType: 'backfill', query: { ...kafka, dryRun: true } }).phase).toBe('running, dry run');
  });

  it('backfill from Kafka: records deleted before the job read them are shown as lost', () => {
    const lost = { ...fileBackfill, cursor: { kafka: { '0': '600' } }, counts: { ...emptyCounts(), records: 400, inserted: 400, deletedBeforeRead: 200 } };
    expect(snapshotOf({ workflowType: 'backfill', query: lost }).detail).toBe('inserted 400, duplicates 0, rejected 0, LOST: deleted from Kafka before they were read 200');
  });

  it('reprocess: hunts filled, then whole while it catches up and swaps', () => {
    expect(snapshotOf({ workflowType: 'reprocess', query: { phase: 'preparing', huntsDone: 0, huntsTotal: 0, startedSeq: null } })).toMatchObject({ done: 0, total: undefined });
    expect(snapshotOf({ workflowType: 'reprocess', query: { phase: 'filling', huntsDone: 30, huntsTotal: 120, startedSeq: 99 } })).toMatchObject({ done: 30, total: 120, unit: 'hunts', detail: 'events up to seq 99' });
    expect(snapshotOf({ workflowType: 'reprocess', query: { phase: 'swapping', huntsDone: 118, huntsTotal: 120, startedSeq: 99 } })).toMatchObject({ done: 120, total: 120 });
  });

  it('reconcile: total from the heartbeat or the hunts asked for; done from Postgres, else the heartbeat', () => {
    const query = { phase: 'reconciling', runId: 'wf/run', repair: true, huntIds: null };
    const heartbeat = { huntsDone: 40, summary: { hunts: 200, playersChecked: 4000, playersDrifted: 3, treasuresChanged: 1 } };
    expect(snapshotOf({ workflowType: 'reconcile', query })).toMatchObject({ done: 0, total: undefined, detail: 'repair' });
    // A heartbeat before the scope is open: its 0 hunts is not the total (it showed 100%).
    const choosing = { fromSeq: 10, toSeq: 5000, summary: { ...heartbeat.summary, hunts: 0 } };
    expect(snapshotOf({ workflowType: 'reconcile', query, heartbeat: choosing })).toMatchObject({ done: 0, total: undefined });
    expect(snapshotOf({ workflowType: 'reconcile', query, heartbeat })).toMatchObject({ done: 40, total: 200 });
    expect(snapshotOf({ workflowType: 'reconcile', query, heartbeat, reconciledHunts: 75 })).toMatchObject({
      done: 75,
      total: 200,
      detail: 'repair; players checked 4000, drifted 3, treasures changed 1',
    });
    expect(snapshotOf({ workflowType: 'reconcile', query: { ...query, huntIds: ['a', 'b', 'a'], repair: false }, reconciledHunts: 1 })).toMatchObject({ done: 1, total: 2, detail: 'no repair' });
    const result = { runId: 'wf/run', hunts: 7, playersChecked: 140, playersDrifted: 2, treasuresChanged: 0, repaired: true, drifted: [] };
    expect(snapshotOf({ workflowType: 'reconcile', query: { ...query, phase: 'done' }, result })).toMatchObject({
      phase: 'done',
      done: 7,
      total: 7,
      detail: 'repair; players checked 140, drifted 2, treasures changed 0',
    });
  });

  it('says first that a step is tried again, and how its last try ended, until the job ends', () => {
    const retrying = { activityType: 'importChunks', attempt: 4, lastFailure: 'The group is not authorized to read topic hunt.events' };
    const s = snapshotOf({ workflowType: 'backfill', query: fileBackfill, retrying });
    expect(s).toMatchObject({ done: 10_000_000, total: 25_000_000 });
    expect(s.detail).toBe('step importChunks on try 4, the last failed: The group is not authorized to read topic hunt.events');
    expect(renderPlainLine(s)).toBe(
      'backfill running: 40.0%, 10.0 MB of 25.0 MB, 20,000 records/s, ETA 0:04; step importChunks on try 4, the last failed: The group is not authorized to read topic hunt.events',
    );
    expect(snapshotOf({ workflowType: 'rollupFlush', retrying: { ...retrying, lastFailure: 'x'.repeat(500) } }).detail).toHaveLength(
      'step importChunks on try 4, the last failed: '.length + 161,
    );
    // What a failure message holds is printed past the console's scrubbing: no control characters, no secret.
    registerSecret('progress-secret-9191');
    const hostile = snapshotOf({ workflowType: 'rollupFlush', retrying: { ...retrying, lastFailure: 'redrawn\r\x1b[2Jwith progress-secret-9191' } }).detail;
    expect(hostile).toBe('step importChunks on try 4, the last failed: redrawn\\u000d\\u001b[2Jwith ***');
    const result = { state: 'completed', counts: emptyCounts() };
    expect(snapshotOf({ workflowType: 'backfill', query: fileBackfill, retrying, result }).detail).not.toMatch(/try 4/);
    // No worker to answer: that is said first (its steps time out and wait for one).
    const unanswered = 'no answer to the progress query: is a worker polling the task queue?';
    expect(snapshotOf({ workflowType: 'backfill', unanswered, retrying }).detail).toBe(unanswered);
  });

  it('takes the pending step tried most often after a failure, none tried once', () => {
    const SCHEDULED = 1;
    const STARTED = 2;
    expect(retryingStep([{ activityType: { name: 'importChunks' }, attempt: 1, state: SCHEDULED }])).toBeUndefined();
    expect(retryingStep([{ activityType: { name: 'importChunks' }, attempt: 3, state: SCHEDULED }])).toBeUndefined(); // no failure recorded
    expect(
      retryingStep([
        { activityType: { name: 'describeBackfillSource' }, attempt: 2, state: SCHEDULED, lastFailure: { message: 'connection refused' } },
        { activityType: { name: 'importChunks' }, attempt: 5, state: SCHEDULED, lastFailure: { message: 'activity Heartbeat timeout' } },
      ]),
    ).toEqual({ activityType: 'importChunks', attempt: 5, lastFailure: 'activity Heartbeat timeout' });
    // Started again after its failures: getting on, its counts say more.
    expect(retryingStep([{ activityType: { name: 'importChunks' }, attempt: 5, state: STARTED, lastFailure: { message: 'activity Heartbeat timeout' } }])).toBeUndefined();
  });

  it('says no worker answered, for every job type', () => {
    const unanswered = 'no answer to the progress query: is a worker polling the task queue?';
    for (const workflowType of ['backfill', 'reprocess', 'reconcile', 'dataQuality', 'rollupFlush', 'dlqReplay']) {
      expect(snapshotOf({ workflowType, unanswered, elapsedSeconds: 4 }).detail).toBe(unanswered);
    }
    expect(renderPlainLine(snapshotOf({ workflowType: 'dataQuality', unanswered, elapsedSeconds: 725 }))).toBe(`dataQuality running: 12:05 elapsed; ${unanswered}`);
    // A worker's answer that the job has no progress query is no news.
    expect(snapshotOf({ workflowType: 'rollupFlush', elapsedSeconds: 4 }).detail).toBeUndefined();
  });

  describe('as a look at the job tells them apart', () => {
    afterEach(() => void vi.useRealTimers());
    /** A handle whose progress query ends as `answer` says. */
    const handleAnswering = (answer: () => Promise<unknown>) =>
      ({
        query: answer,
        describe: async () => ({ raw: { pendingActivities: [] } }),
        client: { withDeadline: (_: number, fn: () => Promise<unknown>) => fn() },
      }) as unknown as WorkflowHandle;

    it('a worker saying the job has no progress query: no news', async () => {
      const noHandler = handleAnswering(async () => Promise.reject(new Error('Workflow did not register a handler for progress. Registered queries: []')));
      expect((await observeJob(noHandler, 'dataQuality')).detail).toBeUndefined();
    });

    it('a query failing otherwise: said, its control characters escaped and secrets hidden (the progress line is drawn past the console\'s scrubbing)', async () => {
      const failing = handleAnswering(async () => Promise.reject(new Error('query failed\x1b[2J\r at postgres://hunt:s3cret@db:5432/hunt')));
      const detail = (await observeJob(failing, 'backfill')).detail ?? '';
      expect(detail).toMatch(/^no progress: query failed\\u001b\[2J\\u000d at postgres:\/\/hunt:\*\*\*@db/);
      expect(detail).not.toContain('s3cret');
      expect(detail).not.toContain('\x1b');
    });

    it('no worker answering within the deadline: said, for a job type without a progress query too', async () => {
      vi.useFakeTimers();
      const noWorker = handleAnswering(() => new Promise((_, reject) => setTimeout(() => reject(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded')), 5000)));
      const look = observeJob(noWorker, 'dataQuality');
      await vi.advanceTimersByTimeAsync(5000);
      expect((await look).detail).toBe('no answer to the progress query: is a worker polling the task queue?');
    });
  });
});

describe('jobResult', () => {
  /** A gRPC error as the SDK wraps it after its own retries (ServiceError, cause the gRPC error). */
  const grpc = (code: number) => Object.assign(new Error('Failed to query workflow'), { cause: Object.assign(new Error(`${code} UNAVAILABLE: No connection established`), { code, details: 'No connection established', metadata: {} }) });
  /** A handle answering `answers` in turn; asked again, through the client's handle of the job's latest run. */
  const handleOf = (answers: Array<() => Promise<unknown>>, latest: string[] = []) => {
    const handle = {
      workflowId: 'job-1',
      result: () => (answers.shift() ?? (() => Promise.resolve('again')))(),
      client: { getHandle: (id: string) => (latest.push(id), handle) },
    };
    return handle as unknown as WorkflowHandle;
  };

  it('asks again while Temporal cannot be reached, saying so once, instead of reporting the running job failed', async () => {
    const lost: unknown[] = [];
    const latest: string[] = [];
    // UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (a rate limit): the job runs on.
    const handle = handleOf([() => Promise.reject(grpc(14)), () => Promise.reject(grpc(4)), () => Promise.reject(grpc(8)), () => Promise.resolve({ done: true })], latest);
    expect(await jobResult(handle, { reconnectMs: 1, onLost: (err) => lost.push(err) })).toEqual({ done: true });
    expect(lost).toHaveLength(1);
    // Asked again of the job's latest run, by its workflow id alone.
    expect(latest).toEqual(['job-1', 'job-1', 'job-1']);
  });

  it("throws the job's own failure, and any other error, at once", async () => {
    const failed = new Error('Workflow execution failed');
    await expect(jobResult(handleOf([() => Promise.reject(failed)]), { reconnectMs: 1 })).rejects.toBe(failed);
    await expect(jobResult(handleOf([() => Promise.reject(grpc(7))]), { reconnectMs: 1 })).rejects.toThrow('Failed to query workflow');
  });
});

describe('backfillSource', () => {
  it('is a file, or a Kafka topic with an optional time range', () => {
    expect(backfillSource({ file: '/data/a.ndjson' })).toEqual({ kind: 'file', path: '/data/a.ndjson' });
    expect(backfillSource({ topic: 'hunt.events', from: '2026-11-21T00:00:00.000Z', to: '2026-11-22T00:00:00.000Z' })).toEqual({
      kind: 'kafka',
      topic: 'hunt.events',
      from: '2026-11-21T00:00:00.000Z',
      to: '2026-11-22T00:00:00.000Z',
    });
    expect(backfillSource({ topic: 'hunt.events' })).toEqual({ kind: 'kafka', topic: 'hunt.events' });
  });

  it('says what is wrong otherwise', () => {
    expect(backfillSource({})).toMatch(/--file <path> .* or --topic <topic>/);
    expect(backfillSource({ topic: 'no spaces' })).toMatch(/--topic must be a Kafka topic name/);
    expect(backfillSource({ topic: 't', from: '2026-11-22T00:00:00.000Z', to: '2026-11-21T00:00:00.000Z' })).toMatch(/--from .* must be before --to/);
  });
});
