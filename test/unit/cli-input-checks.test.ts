/**
 * The `hunt` job commands refuse what their jobs would refuse, before starting anything: a
 * job started without --wait with an input it then refuses failed where nobody looked, and
 * the command had said "started" and exited 0.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, CancelledFailure, RetryState, TerminatedFailure, TimeoutFailure, TimeoutType } from '@temporalio/common';
import { Command, CommanderError } from 'commander';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { positiveInt } from '../../src/cli/arguments';
import { registerCorrectnessCommands } from '../../src/cli/correctness';
import { registerJobCommands } from '../../src/cli/jobs';
import { jobFailureMessage, unfinishedWork } from '../../src/cli/start-job';
import { registerProduceCommand } from '../../src/cli/produce';
import { registerStartCommand } from '../../src/cli/start';

// A command that passes its checks starts its job: recorded here instead of sent to Temporal.
const started: { workflowType: string; input: Record<string, unknown> }[] = [];
vi.mock('../../src/cli/start-job', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/cli/start-job')>()),
  startJob: async (workflowType: string, input: Record<string, unknown>) => void started.push({ workflowType, input }),
}));
// `hunt start` would bring the stack up.
vi.mock('../../src/cli/main-job', () => ({ runMainJob: async () => undefined }));

beforeEach(() => {
  started.length = 0;
});

/** What the command line is refused with (commander's message), or undefined if it ran. */
async function refusal(args: string[]): Promise<string | undefined> {
  const program = new Command('hunt').exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  registerJobCommands(program);
  registerCorrectnessCommands(program);
  registerStartCommand(program);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.message;
    throw err;
  }
  return undefined;
}

describe('hunt job commands', () => {
  it.each([
    [['backfill', '--topic', 'hunt.events', '--from', '1969-06-01'], /at or after 1970-01-01T00:00:00.000Z/],
    [['backfill', '--file', 'x.ndjson', '--chunk-size', '60000'], /at most 50000/],
    [['backfill', '--file', 'x.ndjson', '--chunk-size', '1e3'], /positive whole number, got '1e3'/],
    [['backfill', '--file', 'x.ndjson', '--hunt', 'a b'], /hunt id is 1-64 characters/],
    [['reconcile', '--hunt', 'h1', 'h 2'], /hunt id is 1-64 characters of \[A-Za-z0-9_.-\], got 'h 2'/],
    [['reprocess', '--projection', 'foo'], /Allowed choices are leaderboard/],
    [['dlq', 'replay', '--from', '2026-02-30'], /no such date or time/],
    [['dlq', 'replay', '--reason', 'bogus'], /Allowed choices are/],
    [['dlq', 'replay', '--from', '2026-12-02', '--to', '2026-12-01'], /--from \(2026-12-02T00:00:00.000Z\) must be before --to/],
    [['start', '--duration', '2200000'], /at most 2147483 seconds/],
    [['start', '--rate', '1e8'], /--rate must be at most 1,000,000 events\/s, got '1e8'/],
    [['backfill', '--topic', 'hunt.events', '--from', '2999-01-01'], /later than now: there is nothing to import from it yet/],
    [['reconcile', '--hunt', ...Array.from({ length: 1001 }, (_, i) => `h${i}`)], /at most 1000 hunts/],
  ])('refuse %j', async (args, message) => {
    expect(await refusal(args)).toMatch(message);
    expect(started).toEqual([]);
  });

  it.each([
    [['backfill', '--topic', 'hunt.events', '--from', '2026-12-01', '--chunk-size', '50000', '--hunt', 'hunt-1']],
    [['reconcile', '--hunt', 'h1', 'h-2']],
    [['dlq', 'replay', '--reason', 'future_timestamp', 'schema_violation', '--from', '2026-12-01']],
    [['reprocess']],
    [['start', '--duration', '60', '--no-demo']],
    [['start', '--rate', '1e6']],
  ])('take %j', async (args) => {
    expect(await refusal(args)).toBeUndefined();
    if (args[0] !== 'start') expect(started).toHaveLength(1);
  });

  it('pass what they checked to the job as the job takes it', async () => {
    await refusal(['dlq', 'replay', '--reason', 'future_timestamp', '--from', '2026-12-01']);
    expect(started).toEqual([{ workflowType: 'dlqReplay', input: { reasons: ['future_timestamp'], from: '2026-12-01T00:00:00.000Z' } }]);
  });

  it("refuse a rate past what one process can build, in `hunt produce` as in `hunt start`", () => {
    // The option's own parser: a rate it took would start sending to Kafka.
    const program = new Command('hunt');
    registerProduceCommand(program);
    const rate = program.commands.find((c) => c.name() === 'produce')?.options.find((o) => o.long === '--rate');
    expect(() => rate?.parseArg?.('1000001', undefined)).toThrow(/--rate must be at most 1,000,000 events\/s, got '1000001'/);
    expect(rate?.parseArg?.('1e6', undefined)).toBe(1_000_000);
  });

  it('take only digits as a whole number', () => {
    expect(positiveInt('7')).toBe(7);
    for (const raw of [' 7 ', '0x10', '1e3', '7.0', '-1', '0']) expect(() => positiveInt(raw)).toThrow(/positive whole number/);
  });
});

describe('a failed job\'s message under --wait', () => {
  /** How the client hands a job's failure over: workflow failed, activity failed, then the job's own. */
  const failedJob = (own: Error) =>
    new WorkflowFailedError('Workflow execution failed', new ActivityFailure('Activity task failed', 'runDataQualityChecks', '1', RetryState.NON_RETRYABLE_FAILURE, 'worker', own), RetryState.NON_RETRYABLE_FAILURE);

  it("is the job's own failure, not the SDK's wrappers' nor the cause the job names", async () => {
    const own = ApplicationFailure.create({
      type: 'DataQualityCheckFailed',
      message: 'dataQuality R, check rollup_mismatch: failed (failure 5 in a row with no progress; not retried)',
      cause: ApplicationFailure.create({ type: 'DatabaseError', message: 'canceling statement due to statement timeout' }),
    });
    expect(await jobFailureMessage(failedJob(own))).toBe(own.message);
    // A cause that is a plain Error (not sent through Temporal) is not taken either.
    const local = ApplicationFailure.create({ message: 'source.path is outside the import folder BACKFILL_IMPORT_DIR', cause: new Error('EACCES') });
    expect(await jobFailureMessage(failedJob(local))).toBe(local.message);
    const cancelled = new CancelledFailure('reprocess leaderboard (job 3): cancelled before the swap; the live tables are untouched', [], new Error('activity cancelled'));
    expect(await jobFailureMessage(new WorkflowFailedError('Workflow execution cancelled', cancelled, RetryState.NON_RETRYABLE_FAILURE))).toBe(cancelled.message);
    expect(await jobFailureMessage(failedJob(new TimeoutFailure('activity StartToClose timeout', undefined, TimeoutType.START_TO_CLOSE)))).toBe('activity StartToClose timeout');
    expect(await jobFailureMessage(new WorkflowFailedError('Workflow execution terminated', new TerminatedFailure('stuck, ended by hand'), RetryState.NON_RETRYABLE_FAILURE))).toBe('stuck, ended by hand');
  });

  it('is the error itself when it is no SDK wrapper', async () => {
    expect(await jobFailureMessage(new Error('Failed to query workflow', { cause: new Error('14 UNAVAILABLE') }))).toBe('Failed to query workflow');
    expect(await jobFailureMessage(new WorkflowFailedError('Workflow execution failed', undefined, RetryState.NON_RETRYABLE_FAILURE))).toBe('Workflow execution failed');
  });
});

describe("a finished job's work left undone, for --wait's exit code", () => {
  it('names reconcile hunts that failed and backfill records lost to retention, and nothing for a job done whole', () => {
    expect(unfinishedWork({ hunts: 2, huntsFailed: 1 })).toMatch(/^1 hunt\(s\) could not be reconciled/);
    expect(unfinishedWork({ state: 'completed', counts: { records: 400, deletedBeforeRead: 200 } })).toMatch(/^200 record\(s\) of the range were deleted from Kafka/);
    expect(unfinishedWork({ state: 'completed', counts: { records: 400, deletedBeforeRead: 0 } })).toBeUndefined();
    expect(unfinishedWork({ hunts: 2, huntsFailed: 0 })).toBeUndefined();
    expect(unfinishedWork(undefined)).toBeUndefined();
  });

  it('names the hunts a data-quality repair left unrepaired, and nothing for a repair done whole', () => {
    const check = (name: string, repaired?: Record<string, unknown>) => ({ check: name, severity: 'error', count: 3, samples: [], ...(repaired && { repaired }) });
    const result = {
      runId: 'dataQuality-1',
      repair: true,
      checks: [check('score_drift', { huntsReconciled: 1, huntsFailed: 2 }), check('orphan_projection_rows', { huntsReconciled: 0, huntsFailed: 1 }), check('rollup_mismatch', { windowsReaggregated: 4 })],
    };
    expect(unfinishedWork(result)).toMatch(/^3 hunt\(s\) could not be repaired \(score_drift 2, orphan_projection_rows 1\): see which and why in reconcile_failures .*`hunt dq run --repair` again$/);
    expect(unfinishedWork({ ...result, checks: [check('score_drift', { huntsReconciled: 3, huntsFailed: 0 }), check('future_events')] })).toBeUndefined();
    expect(unfinishedWork({ runId: 'dataQuality-2', repair: false, checks: [check('score_drift')] })).toBeUndefined();
  });
});
