/**
 * The batch-plane worker: polls the task queue (hunt-batch by default) for workflow and
 * activity tasks, with activities built from real dependencies. Prometheus metrics of the
 * SDK runtime are served when a metrics port is configured.
 */
import path from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, Worker, makeTelemetryFilterString, type LogLevel } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { projectRoot, type Config } from '../config';
import { createKafka } from '../ingest/kafka-client';
import type { Logger } from '../log';
import { createPool } from '../store/pool';

let runtimeInstalled = false;

/**
 * Installs the SDK runtime once per process (it is global), with Prometheus metrics if asked.
 * `sdkLogLevel` quiets the SDK's own console logging (bundle build, state changes) where the
 * worker shares a terminal with other output, as in `hunt start`.
 */
export function installRuntime(metricsPort: number | undefined, sdkLogLevel: LogLevel = 'INFO'): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger(sdkLogLevel),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) },
      ...(metricsPort ? { metrics: { prometheus: { bindAddress: `0.0.0.0:${metricsPort}` } } } : {}),
    },
  });
}

export interface WorkerService {
  worker: Worker;
  /** Resolves when the worker has stopped (after shutdown() or a fatal error). */
  run(): Promise<void>;
  close(): Promise<void>;
}

export async function createWorkerService(config: Config, logger: Logger, taskQueue = config.temporal.taskQueue): Promise<WorkerService> {
  const pool = createPool(config, 10, (err) => logger.warn({ err }, 'Postgres connection lost; it will be replaced'));
  const kafka = createKafka(config, logger);
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue,
    workflowsPath: path.join(projectRoot, 'workflows/index.ts'),
    activities: createActivities({ pool, kafka, config, logger }),
    // Long activities heartbeat; give a stopping worker time to finish its chunk.
    shutdownGraceTime: '20 seconds',
  });
  return {
    worker,
    run: () => worker.run(),
    async close() {
      await connection.close();
      await pool.end();
    },
  };
}
