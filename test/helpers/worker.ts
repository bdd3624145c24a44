/** The real `hunt worker` as a child process (so a test can kill -9 it), and a client. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig, projectRoot } from '../../src/config';

const config = loadConfig();

/** Where tests write backfill files; workers started here may import from it. */
export const TEST_DATA_DIR = path.join(projectRoot, '.hunt', 'test-data');
/** The topics createTestTopics makes (`t-<unique>.events`): what the tests' backfills may read. */
export const TEST_BACKFILL_TOPICS = 't-*';

export interface WorkerProcess {
  child: ChildProcess;
  logFile: string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

export function startWorkerProcess(databaseUrl: string, taskQueue: string, env: Record<string, string> = {}): WorkerProcess {
  const logDir = path.join(projectRoot, '.hunt', 'test-logs');
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `worker-${taskQueue}-${Date.now()}.log`);
  const log = fs.openSync(logFile, 'a');
  const child = spawn('node', [path.join(projectRoot, 'bin/hunt.js'), 'worker'], {
    env: { ...process.env, DATABASE_URL: databaseUrl, TEMPORAL_TASK_QUEUE: taskQueue, LOG_LEVEL: 'info', BACKFILL_IMPORT_DIR: TEST_DATA_DIR, BACKFILL_TOPICS: TEST_BACKFILL_TOPICS, ...env },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    logFile,
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

export async function temporalClient(): Promise<{ client: Client; close: () => Promise<void> }> {
  const connection = await Connection.connect({ address: config.temporal.address });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}

export function writeNdjson(file: string, values: Buffer[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'w');
  for (const value of values) {
    fs.writeSync(fd, value);
    fs.writeSync(fd, '\n');
  }
  fs.closeSync(fd);
}

/** A real worker in this process on its own task queue, with activities on the given pool. */
export async function startInProcessWorker(pool: import('pg').Pool, taskQueue: string) {
  const { NativeConnection, Worker } = await import('@temporalio/worker');
  const { Kafka, logLevel } = await import('kafkajs');
  const { createActivities } = await import('../../src/worker/activities');
  const { createLogger } = await import('../../src/log');
  const { quietTemporalRuntime } = await import('./temporal');
  quietTemporalRuntime();
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue,
    workflowsPath: path.join(projectRoot, 'workflows/index.ts'),
    activities: createActivities({
      pool,
      kafka: new Kafka({ brokers: config.kafka.brokers, logLevel: logLevel.NOTHING }),
      config: { ...config, backfill: { importDir: TEST_DATA_DIR, topics: [TEST_BACKFILL_TOPICS] } },
      logger: createLogger({ logLevel: 'warn' }),
    }),
  });
  const running = worker.run();
  return {
    worker,
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
