/**
 * The `hunt` job commands refuse what their jobs would refuse, before starting anything: a
 * job started without --wait with an input it then refuses failed where nobody looked, and
 * the command had said "started" and exited 0.
 */
import { Command, CommanderError } from 'commander';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { positiveInt } from '../../src/cli/arguments';
import { registerCorrectnessCommands } from '../../src/cli/correctness';
import { registerJobCommands } from '../../src/cli/jobs';
import { jobFailureMessage, unfinishedWork } from '../../src/cli/start-job';
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
  ])('take %j', async (args) => {
    expect(await refusal(args)).toBeUndefined();
    if (args[0] !== 'start') expect(started).toHaveLength(1);
  });

  it('pass what they checked to the job as the job takes it', async () => {
    await refusal(['dlq', 'replay', '--reason', 'future_timestamp', '--from', '2026-12-01']);
    expect(started).toEqual([{ workflowType: 'dlqReplay', input: { reasons: ['future_timestamp'], from: '2026-12-01T00:00:00.000Z' } }]);
  });

  it('take only digits as a whole number', () => {
    expect(positiveInt('7')).toBe(7);
    for (const raw of [' 7 ', '0x10', '1e3', '7.0', '-1', '0']) expect(() => positiveInt(raw)).toThrow(/positive whole number/);
  });
});

describe('a failed job\'s message under --wait', () => {
  it('is the innermost cause\'s, not the SDK\'s wrappers\'', () => {
    const reason = new Error('source.path /tmp/x.ndjson is outside the import folder BACKFILL_IMPORT_DIR');
    const activity = new Error('Activity task failed', { cause: reason });
    const workflow = new Error('Workflow execution failed', { cause: activity });
    expect(jobFailureMessage(workflow)).toBe(reason.message);
    expect(jobFailureMessage(new Error('Workflow execution failed', { cause: new Error('source.kind must be "file" or "kafka"') }))).toBe('source.kind must be "file" or "kafka"');
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
});
