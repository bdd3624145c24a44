/**
 * Batch jobs fail fast on input that can never work, with a message that says what to fix,
 * instead of retrying forever; and data that is merely bad is quarantined while the job
 * finishes. The real worker process, Temporal server and Postgres; the worker's memory is
 * watched through a 100 MB line.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { clueFound, recordOf } from '../helpers/event-builders';
import { uniqueName } from '../helpers/wait';
import { startWorkerProcess, temporalClient, TEST_DATA_DIR, writeNdjson, type WorkerProcess } from '../helpers/worker';

const dataDir = path.join(TEST_DATA_DIR, uniqueName('bad-input'));
const taskQueue = uniqueName('bad-input');
const db = useTestDatabase();
let worker: WorkerProcess;
let client: Client;
let closeClient: () => Promise<void>;

beforeAll(async () => {
  fs.mkdirSync(dataDir, { recursive: true });
  worker = startWorkerProcess(db.url, taskQueue);
  ({ client, close: closeClient } = await temporalClient());
});
afterAll(async () => {
  await worker?.kill('SIGTERM');
  await closeClient?.();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const execute = (workflowType: string, input: unknown, workflowId = uniqueName(workflowType)) =>
  client.workflow.execute(workflowType, { taskQueue, workflowId, args: [input as never] });
/** The attempt each of a finished job's steps ended on (the history records a step's start once, with its last attempt). */
async function stepAttempts(workflowId: string): Promise<number[]> {
  const history = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return history.flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 0] : []));
}
/** The failure's message, with the activity's own message when the check ran in one. */
async function failureOf(run: Promise<unknown>): Promise<string> {
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  return [cause?.message, (cause?.cause as Error | undefined)?.message].filter(Boolean).join(' / ');
}
const at = (i: number) => new Date(Date.now() - 3_600_000 + i).toISOString();

describe('backfill', () => {
  it('quarantines a line of NUL and schema-registry bytes and finishes the file', async () => {
    const file = path.join(dataDir, 'nul.ndjson');
    writeNdjson(file, [
      recordOf(clueFound({ eventId: 'n-1', huntId: 'h', playerId: 'a', occurredAt: at(1) })),
      Buffer.from([0, 0, 0, 0, 1, 0x7b, 0x7d]),
      Buffer.from('\u0000\u0000\u0000'),
      recordOf(clueFound({ eventId: 'n-2', huntId: 'h', playerId: 'b', occurredAt: at(2) })),
    ]);
    const result = await execute('backfill', { source: { kind: 'file', path: file } });
    expect(result).toMatchObject({ state: 'completed', counts: { records: 4, inserted: 2, rejected: 2, rejectedByReason: { invalid_json: 2 } } });
    const { rows } = await db.pool.query(`SELECT source_offset, reason, detail FROM quarantine WHERE source_topic = $1 ORDER BY source_offset`, [`file:${fs.realpathSync(file)}`]);
    expect(rows.map((r) => [r.source_offset, r.reason])).toEqual([
      [2, 'invalid_json'],
      [3, 'invalid_json'],
    ]);
    expect(rows[0].detail).toContain('\\u0000');

    // The same file again, spelled another way: its rejects are the same source's, kept once.
    const again = await execute('backfill', { source: { kind: 'file', path: file.replace('/nul.ndjson', '//./nul.ndjson') } });
    expect(again).toMatchObject({ state: 'completed', counts: { records: 4, rejected: 2 } });
    const kept = await db.pool.query(`SELECT source_topic FROM quarantine WHERE source_topic LIKE '%nul.ndjson'`);
    expect(kept.rows).toEqual([{ source_topic: `file:${fs.realpathSync(file)}` }, { source_topic: `file:${fs.realpathSync(file)}` }]);
  });

  it('reads a 100 MB line as one too_large record, in flat memory', async () => {
    const file = path.join(dataDir, 'one-line.ndjson');
    const fd = fs.openSync(file, 'w');
    const block = Buffer.alloc(1024 * 1024, 0x61);
    for (let i = 0; i < 100; i++) fs.writeSync(fd, block);
    fs.writeSync(fd, `\n${recordOf(clueFound({ eventId: 'after-long', huntId: 'h', playerId: 'c', occurredAt: at(3) })).toString()}\n`);
    fs.closeSync(fd);
    const rss = watchRss(worker.child.pid as number);
    const result = await execute('backfill', { source: { kind: 'file', path: file } });
    const { baseline, peak } = rss.stop();
    expect(result).toMatchObject({ state: 'completed', counts: { records: 2, inserted: 1, rejected: 1, rejectedByReason: { too_large: 1 } } });
    const { rows } = await db.pool.query(`SELECT reason, detail, length(record_value) AS kept FROM quarantine WHERE source_topic = $1`, [`file:${fs.realpathSync(file)}`]);
    expect(rows).toEqual([{ reason: 'too_large', detail: expect.stringContaining(`line 1 is ${100 * 1024 * 1024} bytes`), kept: 65_536 }]);
    // Reading the line whole would take at least 100 MB more.
    expect(peak - baseline).toBeLessThan(50 * 1024 * 1024);
  });

  it.each([
    ['a directory', () => dataDir, /is a directory, not a regular file/],
    ['/dev/zero', () => '/dev/zero', /outside the import folder .* \(BACKFILL_IMPORT_DIR\)/],
    ['a symlink to /dev/zero inside the import folder', () => link('zero-link.ndjson', '/dev/zero'), /outside the import folder/],
    ['a FIFO', () => fifo('pipe.ndjson'), /is a FIFO, not a regular file/],
    ['a file outside the import folder', () => path.join(TEST_DATA_DIR, '..', 'test-logs'), /outside the import folder/],
  ])('fails fast on %s, saying what to fix', async (_what, pathOf, message) => {
    const workflowId = uniqueName('backfill');
    expect(await failureOf(execute('backfill', { source: { kind: 'file', path: pathOf() } }, workflowId))).toMatch(message);
    // One attempt, no retries: each step that ran (the check may fail the job before any) ended on its first.
    expect((await stepAttempts(workflowId)).every((attempt) => attempt === 1)).toBe(true);
  });

  it('fails fast on an impossible date in a Kafka range', async () => {
    expect(await failureOf(execute('backfill', { source: { kind: 'kafka', topic: 'hunt.events', from: '2026-02-30' } }))).toMatch(
      /from must be an ISO-8601 time .*got "2026-02-30": no such date/,
    );
  });

  it('fails fast on a Kafka range from before 1970, which Kafka cannot look up', async () => {
    for (const from of ['1969-12-31T23:59:59.999Z', '1900-01-01']) {
      expect(await failureOf(execute('backfill', { source: { kind: 'kafka', topic: 'hunt.events', from } }))).toMatch(
        /source\.from must be at or after 1970-01-01T00:00:00\.000Z/,
      );
    }
  });
});

describe('backfill from a time still to come', () => {
  it('fails fast: Kafka would answer with the log\'s end, and the job import nothing and end green', async () => {
    const from = new Date(Date.now() + 86_400_000).toISOString();
    expect(await failureOf(execute('backfill', { source: { kind: 'kafka', topic: 'hunt.events', from } }))).toMatch(/source\.from \(.*\) is later than now: there is nothing to import from it yet/);
  });
});

describe('healthCheck', () => {
  it('fails fast on input it does not take', async () => {
    expect(await failureOf(execute('healthCheck', { foo: 1 }))).toMatch(/unknown field\(s\) foo; allowed: \(none\)/);
    expect(await failureOf(execute('healthCheck', 'x'))).toMatch(/expected a JSON object such as \{\}/);
  });

  it('shows a bad value cut short, so a message never carries a megabyte of input', async () => {
    // 20,000 hunt ids, the last one bad: the whole list in the message (and its stack trace)
    // grew with the input, and past 2 MB the server terminated the run without a word of it.
    const huntIds = [...Array.from({ length: 20_000 }, (_, i) => `hunt-${i}`), 'not an id!'];
    const message = await failureOf(execute('reconcile', { huntIds }));
    expect(message).toMatch(/huntIds must be a non-empty list of hunt ids .*got \["hunt-0","hunt-1",.*… \(\d+ characters\)$/);
    expect(message.length).toBeLessThan(600);
    const fields = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`field-${i}`, i]));
    expect(await failureOf(execute('healthCheck', fields))).toMatch(/unknown field\(s\) field-0, .*field-9 and 90 more; allowed: \(none\)$/);
  });
});

describe('dlqReplay', () => {
  it.each([
    [{ from: '2026-02-30' }, /from must be an ISO-8601 time .*"2026-02-30": no such date/],
    [{ to: '1' }, /to must be an ISO-8601 time .*got "1"/],
    [{ from: '2026-11-22T10:00:00' }, /from must be an ISO-8601 time/],
    [{ from: '2026-11-23', to: '2026-11-22' }, /from \(2026-11-23T00:00:00.000Z\) must be before to/],
    // Valid-looking, but in year 10000 and year 0 once in UTC: Postgres refused them and the job retried for ever.
    [{ to: '9999-12-31T23:59:59-05:00' }, /to must be an ISO-8601 time .*outside the years 0001-9999/],
    [{ from: '0001-01-01T00:00:00+01:00' }, /from must be an ISO-8601 time .*outside the years 0001-9999/],
    [{ reasons: ['nonsense'] }, /reasons must be a non-empty list drawn from .*unprocessable/],
    [{ reasons: [] }, /reasons must be a non-empty list drawn from .*or left out for every reason; got \[\]/],
  ])('fails fast on %j, saying what to fix', async (input, message) => {
    expect(await failureOf(execute('dlqReplay', input))).toMatch(message);
  });

  it('takes a plain date as UTC midnight', async () => {
    await expect(execute('dlqReplay', { from: '2026-02-28', to: '2026-03-01', dryRun: true })).resolves.toMatchObject({ examined: 0 });
  });
});

describe('reconcile', () => {
  it('fails fast on an empty list of hunts, saying to leave it out for every hunt', async () => {
    expect(await failureOf(execute('reconcile', { huntIds: [] }))).toMatch(/huntIds must be a non-empty list of hunt ids .*or left out for every hunt; got \[\]/);
  });

  it('fails fast on a list of more hunts than a job takes, and on settleMs with given hunts', async () => {
    const huntIds = Array.from({ length: 1001 }, (_, i) => `hunt-${i}`);
    expect(await failureOf(execute('reconcile', { huntIds }))).toMatch(/huntIds lists 1001 hunts; at most 1000/);
    expect(await failureOf(execute('reconcile', { huntIds: ['hunt-1'], settleMs: 0 }))).toMatch(/settleMs applies to \{\}.*not to given huntIds/);
  });
});

function link(name: string, target: string): string {
  const file = path.join(dataDir, name);
  fs.symlinkSync(target, file);
  return file;
}

function fifo(name: string): string {
  const file = path.join(dataDir, name);
  execFileSync('mkfifo', [file]);
  return file;
}

/** Samples a process's resident memory until stopped. */
function watchRss(pid: number) {
  const read = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  const baseline = read();
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, read())), 50);
  return {
    stop() {
      clearInterval(timer);
      return { baseline, peak: Math.max(peak, read()) };
    },
  };
}
