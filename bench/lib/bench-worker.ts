/**
 * A real batch-plane worker in the bench process: the shipped workflows and the real
 * activities (createActivities) on a pool to the bench's database, polling a task queue of
 * the run's own, with the worker options of src/worker/service.ts. The workflow bundle is
 * built once per run (webpack takes seconds of CPU) and before any timed phase.
 */
import path from 'node:path';
import {
  bundleWorkflowCode,
  DefaultLogger,
  makeTelemetryFilterString,
  NativeConnection,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import pg from 'pg';
import { createActivities } from '../../src/worker/activities';
import { projectRoot, type Config } from '../../src/config';
import { createKafka } from '../../src/pipeline/kafka-client';
import { createLogger } from '../../src/log';
import { createPool } from '../../src/store/pool';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
let runtimeInstalled = false;

/** The SDK's own INFO lines would drown the bench's progress lines. */
function installQuietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } } });
}

export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  installQuietRuntime();
  bundle ??= bundleWorkflowCode({ workflowsPath: path.join(projectRoot, 'workflows/index.ts'), logger: new DefaultLogger('WARN') });
  return bundle;
}

export interface BenchWorker {
  taskQueue: string;
  /** The pool the activities use (size 10, as `hunt worker`'s). */
  pool: pg.Pool;
  stop(): Promise<void>;
}

export async function startBenchWorker(config: Config, databaseUrl: string, taskQueue: string): Promise<BenchWorker> {
  const logger = createLogger({ logLevel: 'warn' }, 'bench-worker');
  const pool = createPool({ databaseUrl }, 10, (err) => logger.warn({ err }, 'idle Postgres connection lost'));
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: createActivities({ pool, kafka: createKafka(config, logger, 'hunt-bench-worker'), config: { ...config, databaseUrl }, logger }),
    shutdownGraceTime: '20 seconds',
  });
  const running = worker.run();
  return {
    taskQueue,
    pool,
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
      await pool.end();
    },
  };
}
