/**
 * The soak's faults, one after another at a fixed spacing, in a cycle: kill -9 an ingest
 * process (the other keeps its group going); kill -9 the worker during a backfill, during a
 * reprocess and during a reconcile (each job must still finish, exactly); restart the Kafka
 * broker; stop Postgres for 60 s; restart Temporal. Each fault is recorded with its time and
 * outcome for the report's timeline.
 */
import type { Client } from '@temporalio/client';
import type { SoakProcess } from './processes';
import type { SoakStack } from './stack';

export interface FaultRecord {
  at: number;
  name: string;
  tookMs: number;
  outcome: string;
}

export interface ChaosDeps {
  stack: SoakStack;
  ingests: SoakProcess[];
  worker: SoakProcess;
  client: Client;
  taskQueue: string;
  /** Absolute path of the backfill file (under the worker's import folder), written on first use. */
  backfillFile: () => Promise<string>;
  log: (message: string) => void;
}

type Fault = { name: string; run: () => Promise<string> };

export function faultCycle(deps: ChaosDeps): Fault[] {
  const { stack, ingests, worker } = deps;
  /** Starts a job, kills the worker once `midway` says the job is under way, and waits for the job's result. */
  const jobWithWorkerKill = (workflowType: string, input: () => Promise<Record<string, unknown>>, midway: (progress: Record<string, unknown>) => boolean) => async () => {
    const workflowId = `soak-${workflowType}-${Date.now()}`;
    const handle = await deps.client.workflow.start(workflowType, { taskQueue: deps.taskQueue, workflowId, args: [await input()] });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const progress = await handle.query<Record<string, unknown>>('progress').catch(() => undefined);
      if (midway(progress ?? {}) || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await worker.crash(2000);
    const result = await handle.result();
    return `${workflowType} completed after a worker kill -9: ${JSON.stringify(summarize(result))}`;
  };
  return [
    { name: 'kill -9 ingest-a', run: async () => (await ingests[0]?.crash(3000), 'restarted after 3 s') },
    // Killed once a fifth of the file is in: the retry must resume from the heartbeated cursor.
    { name: 'backfill + kill -9 worker', run: jobWithWorkerKill('backfill', async () => ({ source: { kind: 'file', path: await deps.backfillFile() }, chunkSize: 1000 }), (p) => Number(p.percent) >= 20) },
    { name: 'reprocess + kill -9 worker', run: jobWithWorkerKill('reprocess', async () => ({ projection: 'leaderboard', huntsPerChunk: 5 }), (p) => p.phase === 'filling' && Number(p.huntsDone) > 0) },
    // reconcile has no progress query: killed half a second in, while its first hunts commit.
    { name: 'reconcile + kill -9 worker', run: jobWithWorkerKill('reconcile', async () => ({ huntsPerTransaction: 2 }), startedAgo(500)) },
    { name: 'restart Kafka broker', run: async () => (await stack.restartKafka(), 'broker back') },
    { name: 'stop Postgres 60 s', run: async () => (await stack.stopPostgresFor(60_000), 'Postgres back') },
    { name: 'restart Temporal', run: async () => (await stack.restartTemporal(), 'Temporal back') },
    { name: 'kill -9 ingest-b', run: async () => (await ingests[1]?.crash(3000), 'restarted after 3 s') },
  ];
}

function startedAgo(ms: number): () => boolean {
  let first: number | undefined;
  return () => {
    first ??= Date.now();
    return Date.now() - first >= ms;
  };
}

/** Runs faults every `spacingMs` until `until`; returns what happened. */
export async function runChaos(deps: ChaosDeps, options: { firstAfterMs: number; spacingMs: number; until: number }): Promise<FaultRecord[]> {
  const faults = faultCycle(deps);
  const records: FaultRecord[] = [];
  await new Promise((resolve) => setTimeout(resolve, options.firstAfterMs));
  for (let i = 0; Date.now() < options.until; i++) {
    const fault = faults[i % faults.length] as Fault;
    const at = Date.now();
    deps.log(`fault: ${fault.name}`);
    const outcome = await fault.run().catch((err: Error) => `FAILED: ${err.message}`);
    records.push({ at, name: fault.name, tookMs: Date.now() - at, outcome });
    deps.log(`fault: ${fault.name}: ${outcome}`);
    const next = at + options.spacingMs;
    if (next > options.until) break;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
  }
  return records;
}

function summarize(result: unknown): unknown {
  if (!result || typeof result !== 'object') return result;
  const r = result as Record<string, unknown>;
  const keep = ['state', 'counts', 'hunts', 'playersDrifted', 'treasuresChanged', 'rows', 'eventsCaughtUp'];
  return Object.fromEntries(Object.entries(r).filter(([k]) => keep.includes(k)));
}
