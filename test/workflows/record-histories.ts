/**
 * Records one history per workflow type on the real Temporal server, through a real worker
 * with real activities and a fresh database, into test/workflows/histories/. replay.test.ts
 * replays them against the current workflow code, so a change that would break the runs
 * already in flight in production fails CI. Record a new workflow type when it is added;
 * re-record an existing one only once no run of its old code can still be in flight (a
 * re-recording makes the replay pass by forgetting the old behaviour). Commit the files.
 *
 *   npm run histories:record               every exported workflow type
 *   npm run histories:record -- backfill   only the types named
 *   npm run histories:record -- backfill-2 only the histories named
 *
 * `<type>-1.json` is a first run; a higher number is a history a first run cannot show, such
 * as a run continued as new (its input already checked, its state carried). A few are made
 * by hand from recorded ones, and no scenario here writes them: histories/README.md.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
// Needs one protobufjs 8 shared by the @temporalio packages (the root devDependency keeps it
// hoisted); with several copies this fails with "type must be a Type".
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { NativeConnection, Worker } from '@temporalio/worker';
import pg from 'pg';
import { createActivities } from '../../src/worker/activities';
import { loadConfig, projectRoot, type Config } from '../../src/config';
import { createKafka } from '../../src/pipeline/kafka-client';
import { createLogger } from '../../src/log';
import { migrate } from '../../src/store/migrate';
import { createPool } from '../../src/store/pool';
import type { BackfillProgress } from '../../workflows/backfill';
import { adminConnectionString } from '../helpers/database';
import { quietTemporalRuntime } from '../helpers/temporal';
import { inOrderTraffic } from '../helpers/traffic';
import { uniqueName, waitFor } from '../helpers/wait';
import { TEST_DATA_DIR, temporalClient, writeNdjson } from '../helpers/worker';

const HISTORY_DIR = path.join(projectRoot, 'test/workflows/histories');
const WORKFLOWS_PATH = path.join(projectRoot, 'workflows/index.ts');

interface ScenarioContext {
  client: Client;
  type: string;
  taskQueue: string;
  workflowId: string;
  dataDir: string;
}

/** Runs one workflow to its end, driving its signals and queries; returns the handle of the run to record. */
type Scenario = (ctx: ScenarioContext) => Promise<WorkflowHandle>;

/** A job with no signals or queries: start it with `input` and wait for its result. */
function runToEnd(input: unknown): Scenario {
  return async ({ client, taskQueue, workflowId, type }) => {
    const handle = await client.workflow.start(type, { taskQueue, workflowId, args: [input] });
    await handle.result();
    return handle;
  };
}

/** Backfill's activity calls per run before it continues as new (workflows/backfill.ts). */
const BACKFILL_RECORDS_PER_RUN = 200 * 10;

/**
 * One scenario per history file (`<type>-<n>`), in the order they run on one database:
 * backfill comes first among the jobs so that the ones after it have events, quarantined
 * records and projections to work on. A scenario for a type not (yet) exported is skipped.
 */
const scenarios: Record<string, Scenario> = {
  'healthCheck-1': runToEnd({}),

  async 'backfill-1'({ client, taskQueue, workflowId, dataDir }) {
    const traffic = inOrderTraffic(300, 41);
    const file = path.join(dataDir, 'events.ndjson');
    writeNdjson(file, traffic.records.map((r) => r.value));
    // Paused from the start, so the pause and resume signals land at known points whatever
    // the timing: before the first import, then after the source was described.
    const handle = await client.workflow.signalWithStart('backfill', {
      taskQueue,
      workflowId,
      args: [{ source: { kind: 'file', path: file }, chunkSize: 25 }],
      signal: 'pause',
      signalArgs: [],
    });
    const progress = () => handle.query<BackfillProgress>('progress');
    await waitFor('the backfill to report paused', async () => (await progress()).state === 'paused');
    await handle.signal('resume');
    const result = (await handle.result()) as BackfillProgress;
    if (result.state !== 'completed' || result.counts.records !== traffic.records.length) {
      throw new Error(`backfill ended unexpectedly: ${JSON.stringify(result)}`);
    }
    return handle;
  },

  // The run after a continue-as-new: chunks of one record, so the first run's calls end
  // before the file does. Its input is not checked again (workflows/backfill.ts, newJob).
  async 'backfill-2'({ client, taskQueue, workflowId, dataDir }) {
    const traffic = inOrderTraffic(BACKFILL_RECORDS_PER_RUN + 30, 43);
    const file = path.join(dataDir, 'continued.ndjson');
    writeNdjson(file, traffic.records.map((r) => r.value));
    const first = await client.workflow.start('backfill', { taskQueue, workflowId, args: [{ source: { kind: 'file', path: file }, chunkSize: 1 }] });
    await first.result();
    const latest = client.workflow.getHandle(workflowId);
    const { runId } = await latest.describe();
    if (runId === first.firstExecutionRunId) throw new Error('the backfill ended without continuing as new: raise the record count');
    return client.workflow.getHandle(workflowId, runId);
  },

  'rollupFlush-1': runToEnd({}),
  'dlqReplay-1': runToEnd({}),
  'reconcile-1': runToEnd({}),
  'dataQuality-1': runToEnd({}),
  'reprocess-1': runToEnd({ projection: 'leaderboard' }),
};

/** `backfill-2` records a history of workflow type `backfill`. */
function typeOf(name: string): string {
  return name.replace(/-\d+$/, '');
}

async function exportedWorkflowTypes(): Promise<string[]> {
  const workflows: Record<string, unknown> = await import('../../workflows/index');
  return Object.keys(workflows).filter((name) => typeof workflows[name] === 'function');
}

/** A migrated database of its own, so the script needs neither the test run's template nor its data. */
async function createScratchDatabase(config: Config): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `hunt_histories_${crypto.randomBytes(4).toString('hex')}`;
  const adminQuery = async (sql: string) => {
    const admin = new pg.Client({ connectionString: adminConnectionString(config.databaseUrl) });
    await admin.connect();
    try {
      await admin.query(sql);
    } finally {
      await admin.end();
    }
  };
  await adminQuery(`CREATE DATABASE ${name}`);
  const parsed = new URL(config.databaseUrl);
  parsed.pathname = `/${name}`;
  const url = parsed.toString();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await migrate(client);
  } finally {
    await client.end();
  }
  return { url, drop: () => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

async function main(): Promise<void> {
  const exported = await exportedWorkflowTypes();
  const scripted = new Set(Object.keys(scenarios).map(typeOf));
  const unscripted = exported.filter((type) => !scripted.has(type));
  if (unscripted.length > 0) {
    throw new Error(`no recording scenario for workflow type(s) ${unscripted.join(', ')}: add one to ${path.relative(projectRoot, import.meta.filename)}`);
  }
  const asked = process.argv.slice(2);
  const unknown = asked.filter((name) => !exported.includes(name) && !(name in scenarios));
  if (unknown.length > 0) throw new Error(`neither a workflow type of workflows/index.ts nor a history named here: ${unknown.join(', ')}`);
  const names = Object.keys(scenarios).filter((name) => exported.includes(typeOf(name)) && (asked.length === 0 || asked.includes(typeOf(name)) || asked.includes(name)));

  quietTemporalRuntime();
  const config = loadConfig();
  const logger = createLogger({ logLevel: 'warn' });
  const db = await createScratchDatabase(config);
  const pool = createPool({ databaseUrl: db.url }, 4);
  const dataDir = path.join(TEST_DATA_DIR, uniqueName('histories'));
  fs.mkdirSync(dataDir, { recursive: true });
  const { client, close } = await temporalClient();
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  let failed = true;
  try {
    const taskQueue = uniqueName('histories');
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue,
      workflowsPath: WORKFLOWS_PATH,
      // The backfill scenarios' files are in dataDir, under the import folder the tests use.
      activities: createActivities({ pool, kafka: createKafka(config, logger), config: { ...config, backfill: { ...config.backfill, importDir: TEST_DATA_DIR } }, logger }),
    });
    await worker.runUntil(async () => {
      fs.mkdirSync(HISTORY_DIR, { recursive: true });
      for (const name of names) {
        const handle = await scenarios[name]!({ client, type: typeOf(name), taskQueue, workflowId: uniqueName(`history-${name}`), dataDir });
        const file = path.join(HISTORY_DIR, `${name}.json`);
        fs.writeFileSync(file, `${historyToJSON(await handle.fetchHistory())}\n`);
        console.log(`recorded ${path.relative(projectRoot, file)} (workflow ${handle.workflowId})`);
      }
    });
    failed = false;
  } finally {
    await connection.close();
    await close();
    await pool.end();
    fs.rmSync(dataDir, { recursive: true, force: true });
    // Keep the database of a failed recording for inspection.
    if (failed) console.warn(`kept database ${db.url} for inspection`);
    else await db.drop();
  }
}

await main();
