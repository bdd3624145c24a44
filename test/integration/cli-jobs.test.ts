/**
 * The operator CLI against the real stack and a real `hunt worker`: `hunt backfill --topic
 * --from --to --wait`, `hunt reconcile --wait` and `hunt reprocess --wait` follow their job
 * to the end with progress lines (no terminal here: plain lines), and `hunt jobs` shows
 * finished jobs, a paused job's progress, and says so when no worker answers.
 * `hunt dlq list` refuses a bad limit.
 */
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/store/migrate';
import { useTestDatabase } from '../helpers/database-fixture';
import { runHunt } from '../helpers/hunt-command';
import { createTestTopics, sendRecords, type TestTopics } from '../helpers/ingest';
import { inOrderTraffic } from '../helpers/traffic';
import { uniqueName, waitFor } from '../helpers/wait';
import { startWorkerProcess, temporalClient, type WorkerProcess } from '../helpers/worker';

const db = useTestDatabase();
let topics: TestTopics;
let worker: WorkerProcess;
let client: Client;
let closeClient: () => Promise<void>;
const taskQueue = uniqueName('cli-jobs');
const traffic = inOrderTraffic(2000, 21);
let from: string;
let to: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  const pg = await db.pool.connect();
  try {
    await migrate(pg); // the template may come from another checkout's migrations
  } finally {
    pg.release();
  }
  topics = await createTestTopics(2);
  from = new Date(Date.now() - 1000).toISOString();
  await sendRecords(topics.events, traffic.records.map((r) => ({ key: r.key, value: r.value })));
  to = new Date(Date.now() + 1000).toISOString();
  worker = startWorkerProcess(db.url, taskQueue);
  ({ client, close: closeClient } = await temporalClient());
});
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  await worker?.kill('SIGTERM');
  await closeClient?.();
});

/** What `hunt ...` printed on stdout, once it exited with 0. */
async function hunt(args: string[], queue = taskQueue): Promise<string> {
  const run = await runHunt(args, { DATABASE_URL: db.url, TEMPORAL_TASK_QUEUE: queue }, 120_000);
  expect(run.code, run.output).toBe(0);
  return run.stdout;
}

describe('hunt backfill --topic --from --to --wait', () => {
  it('starts the Kafka-range backfill and follows it to the end with progress lines', async () => {
    const out = await hunt(['backfill', '--topic', topics.events, '--from', from, '--to', to, '--wait']);
    expect(out).toContain(`with input {"source":{"kind":"kafka","topic":"${topics.events}","from":"${from}","to":"${to}"}}`);
    // Not a terminal: plain lines, no bar, no carriage returns.
    expect(out).not.toMatch(/\r|█/);
    expect(out).toMatch(/^backfill completed: 100\.0%, 2,000 records of 2,000 records, [\d,]+ records\/s, \d+:\d\d elapsed; inserted \d+, duplicates \d+, rejected \d+/m);
    expect(out).not.toMatch(/no progress/);
    const result = JSON.parse(out.slice(out.indexOf('\n{') + 1)) as { state: string; counts: { records: number; inserted: number } };
    // Every distinct valid event stored once, every duplicate and reject counted as such.
    const inserted = traffic.events.length;
    const counts = { records: 2000, inserted, duplicates: 2000 - inserted - traffic.invalid, rejected: traffic.invalid };
    expect(result).toMatchObject({ state: 'completed', counts });
    expect(out).toContain(`inserted ${inserted}, duplicates ${counts.duplicates}, rejected ${counts.rejected} (`);
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
    expect(rows[0]?.n).toBe(inserted);
  });
});

describe('hunt reconcile --wait and hunt reprocess --wait', () => {
  it('follow their jobs to the end, counting hunts', async () => {
    const reconciled = await hunt(['reconcile', '--hunt', 'hunt-0', 'hunt-1', '--wait']);
    expect(reconciled).toMatch(/^reconcile done: 100\.0%, 2 hunts of 2 hunts, \d+:\d\d elapsed; repair; players checked \d+, drifted 0, treasures changed 0, credits drifted 0$/m);
    expect(reconciled).toMatch(/"hunts": 2/);

    const reprocessed = await hunt(['reprocess', '--wait']);
    expect(reprocessed).toMatch(/^reprocess done: 100\.0%, 5 hunts of 5 hunts/m);
  });

  it('reconcile --wait names the hunts asked for that the store has never seen (a mistyped id checks nothing)', async () => {
    const out = await hunt(['reconcile', '--hunt', 'hunt-0', 'hunt-O', '--wait']);
    expect(out).toMatch(/^reconcile done: 100\.0%, 2 hunts of 2 hunts, .*; UNKNOWN \(no event, no live row; a mistyped id\?\): hunt-O$/m);
    const summary = JSON.parse(out.slice(out.indexOf('\n{') + 1)) as { unknownHunts: string[] };
    expect(summary.unknownHunts).toEqual(['hunt-O']);
  });

  it('reconcile --wait exits 1 and names the hunt when a hunt could not be reconciled', async () => {
    // hunt-2 drifted, and an operator's trigger refuses its repair whatever is retried.
    await db.pool.query(`UPDATE player_scores SET score = score + 1000 WHERE hunt_id = 'hunt-2'`);
    await db.pool.query(`CREATE FUNCTION refuse_hunt_2() RETURNS trigger LANGUAGE plpgsql AS $$
                           BEGIN IF NEW.hunt_id = 'hunt-2' THEN RAISE EXCEPTION 'hunt-2 is frozen'; END IF; RETURN NEW; END $$`);
    await db.pool.query('CREATE TRIGGER refuse_hunt_2 BEFORE INSERT OR UPDATE ON player_scores FOR EACH ROW EXECUTE FUNCTION refuse_hunt_2()');
    try {
      const run = await runHunt(['reconcile', '--hunt', 'hunt-2', 'hunt-3', '--wait'], { DATABASE_URL: db.url, TEMPORAL_TASK_QUEUE: taskQueue }, 120_000);
      expect(run.code, run.output).toBe(1);
      expect(run.output).toMatch(/^reconcile reconcile-\S+: 1 hunt\(s\) could not be reconciled/m);
      const summary = JSON.parse(run.stdout.slice(run.stdout.indexOf('\n{') + 1)) as { hunts: number; huntsFailed: number; failed: { huntId: string }[] };
      expect(summary).toMatchObject({ hunts: 2, huntsFailed: 1, failed: [{ huntId: 'hunt-2' }] });
    } finally {
      await db.pool.query('DROP TRIGGER refuse_hunt_2 ON player_scores; DROP FUNCTION refuse_hunt_2()');
    }
    // With the cause gone, the same command repairs the hunt and exits 0.
    const repaired = await hunt(['reconcile', '--hunt', 'hunt-2', '--wait']);
    expect(repaired).toMatch(/"huntsFailed": 0/);
  });
});

describe('hunt jobs', () => {
  it('lists finished jobs with how long they took, and a paused backfill with its progress', async () => {
    const handle = await client.workflow.signalWithStart('backfill', {
      taskQueue,
      workflowId: uniqueName('paused-backfill'),
      args: [{ source: { kind: 'kafka', topic: topics.events } }],
      signal: 'pause',
      signalArgs: [],
    });
    cleanups.push(() => handle.terminate('test over'));
    await waitFor('the backfill to pause', async () => (await handle.query<{ state: string }>('progress').catch(() => undefined))?.state === 'paused');

    const out = await waitFor('hunt jobs to list the paused backfill', async () => {
      const text = await hunt(['jobs']);
      return text.includes(handle.workflowId) && /^reprocess +COMPLETED/m.test(text) ? text : undefined;
    });
    expect(out).toMatch(new RegExp(`^backfill +RUNNING +\\S+ +${handle.workflowId}$`, 'm'));
    expect(out).toMatch(/^ {4}backfill paused: 0\.0%, 0 records of 2,000 records, 0 records\/s, \d+:\d\d elapsed; inserted 0, duplicates 0, rejected 0$/m);
    expect(out).toMatch(/^reconcile +COMPLETED +\S+ +reconcile-\S+ +took \d+:\d\d$/m);
    expect(out).toMatch(/^backfill +COMPLETED +\S+ +backfill-\S+ +took \d+:\d\d$/m);

    const running = await hunt(['jobs', '--running']);
    expect(running).not.toMatch(/COMPLETED/);
  });

  it('says a running job does not answer when no worker polls its task queue', async () => {
    const orphanQueue = uniqueName('no-worker');
    const handle = await client.workflow.start('reprocess', { taskQueue: orphanQueue, workflowId: uniqueName('orphan'), args: [{ projection: 'leaderboard' }] });
    cleanups.push(() => handle.terminate('test over'));
    const out = await waitFor('hunt jobs to list the orphan', async () => {
      const text = await hunt(['jobs', '--running'], orphanQueue);
      return text.includes(handle.workflowId) ? text : undefined;
    });
    expect(out).toMatch(/^ {4}reprocess running: 0:\d\d elapsed; no answer to the progress query: is a worker polling the task queue\?$/m);
  });
});

describe('hunt dlq list', () => {
  it('refuses a limit that is not a positive whole number, naming it, before touching the database', async () => {
    // A database that cannot be reached: a command that asked it first would fail on that instead.
    const run = await runHunt(['dlq', 'list', '-n', 'abc'], { DATABASE_URL: 'postgres://hunt@127.0.0.1:1/nowhere' }, 30_000);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(/-n, --limit <n>' argument 'abc' is invalid\. expected a positive whole number/);
    const listed = await runHunt(['dlq', 'list', '-n', '3'], { DATABASE_URL: db.url }, 30_000);
    expect(listed.code, listed.output).toBe(0);
  });
});
