/**
 * The batch-plane worker: polls the task queue (hunt-batch by default) for workflow and
 * activity tasks, with activities built from real dependencies. Prometheus metrics of the
 * SDK runtime are served when a metrics port is configured.
 */
import path from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, Worker, makeTelemetryFilterString, type LogLevel } from '@temporalio/worker';
import { createActivities } from './activities';
import { scrubActivityFailures } from './scrub-failures';
import { projectRoot, type Config } from '../config';
import { createKafka } from '../pipeline/kafka-client';
import type { Logger } from '../log';
import type { MetricGauge } from '@temporalio/common';
import { scrubSecrets } from '../redact';
import { connectClient, isTemporalUnreachable, withHint } from '../temporal/client';
import { temporalConnectionOptions } from '../temporal/connection-options';
import type pg from 'pg';
import type { PostgresTarget } from '../store/pg-connection';
import { createPool, IDLE_IN_TRANSACTION_LIMIT_MS, processApplicationName } from '../store/pool';
import { seqOrderProblem } from '../store/batch/settled-seq';
import { sequenceProblemAtStartup } from '../store/serial-sequences';
import { schemaMismatch } from '../store/migrate';
import { startJobRecordsPruner } from './job-records-pruner';
import { STEP_ATTEMPTS_METRIC, STEP_ATTEMPTS_PASS_METRIC, startStepAttemptsMonitor } from './step-attempts';
import { connectAtStartup } from '../backoff';
import { missingSearchAttributes, registerCommand } from '../temporal/search-attribute-check';

let runtimeInstalled = false;

/**
 * Installs the SDK runtime once per process (it is global), with Prometheus metrics if asked.
 * `sdkLogLevel` quiets the SDK's own console logging (bundle build, state changes) where the
 * worker shares a terminal with other output, as in `hunt start`.
 */
export function installRuntime(metrics: Pick<Config['worker'], 'metricsPort' | 'metricsBindAddress'>, sdkLogLevel: LogLevel = 'INFO'): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const { metricsPort, metricsBindAddress } = metrics;
  try {
    installWith(metricsPort, metricsBindAddress, sdkLogLevel);
  } catch (err) {
    // The runtime's own words ("Failed to start prometheus metrics exporter: Address already
    // in use") name neither the setting nor the port.
    if (!metricsPort || !/prometheus|metrics exporter/i.test((err as Error).message)) throw err;
    throw new Error(`WORKER_METRICS_PORT ${metricsPort} on ${metricsBindAddress} cannot be served (another process, or API_PORT or API_OPS_PORT of this one, has it?): ${(err as Error).message}`, { cause: err });
  }
}

function installWith(metricsPort: number | undefined, metricsBindAddress: string, sdkLogLevel: LogLevel): void {
  Runtime.install({
    // The SDK's own lines, and the core's (forwarded: without `forward` the core wrote its
    // own to the console, unscrubbed and in colour), go through the same scrubbing as ours.
    logger: new DefaultLogger(sdkLogLevel, (entry) => {
      const meta = entry.meta === undefined ? '' : ` ${scrubSecrets(safeJson(entry.meta))}`;
      process.stderr.write(`${new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString()} [${entry.level}] ${scrubSecrets(entry.message)}${meta}\n`);
    }),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      ...(metricsPort ? { metrics: { prometheus: { bindAddress: `${hostForBind(metricsBindAddress)}:${metricsPort}` } } } : {}),
    },
  });
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

const runtimeGauges = new Map<string, MetricGauge>();

/** A gauge on the SDK runtime's meter, served with its metrics: made once per process, as the runtime is. */
function runtimeGauge(name: string, help: string): MetricGauge {
  let gauge = runtimeGauges.get(name);
  if (!gauge) runtimeGauges.set(name, (gauge = Runtime.instance().metricMeter.createGauge(name, 'int', '', help)));
  return gauge;
}

/** The step monitor's gauges (step-attempts.ts). */
const stepAttemptsGauge = () =>
  runtimeGauge(STEP_ATTEMPTS_METRIC, 'Tries ended so far of the most-tried pending step of running jobs, by workflow type, activity type and what ended its last try (timeout or failure)');
const stepAttemptsPassGauge = () =>
  runtimeGauge(STEP_ATTEMPTS_PASS_METRIC, "Unix time of the last pass that looked at every running job's steps for hunt_job_step_attempts (none since: the gauge reads 0 or stale for them)");

/** host:port needs brackets around an IPv6 address. */
function hostForBind(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

/**
 * How long a step waits for one of the worker's connections. Without a bound, steps whose
 * statements are stuck (each attempt the server timed out keeps its connection) starve
 * every other job on the worker for ever; with it, the starved steps fail, visibly, and retry.
 */
export const WORKER_POOL_CONNECT_TIMEOUT_MS = 60_000;
const WORKER_POOL_SIZE = 10;

/**
 * `idleInTransactionMs` (IDLE_IN_TRANSACTION_LIMIT_MS; tests pass less): a worker frozen or
 * cut off while a step holds the reprocess fence or hunts' rows would otherwise stop the
 * hot path until someone ends its session by hand. The session is named for pg_stat_activity
 * and for the lock-holder messages of the steps that wait on it.
 */
export function createWorkerPool(
  target: PostgresTarget,
  onConnectionLost: (err: Error) => void,
  connectionTimeoutMillis = WORKER_POOL_CONNECT_TIMEOUT_MS,
  idleInTransactionMs = IDLE_IN_TRANSACTION_LIMIT_MS,
): pg.Pool {
  return createPool(target, WORKER_POOL_SIZE, onConnectionLost, {
    connectionTimeoutMillis,
    idle_in_transaction_session_timeout: idleInTransactionMs,
    fallback_application_name: processApplicationName('hunt-worker'),
  });
}

/**
 * The longest the SDK holds back a step's heartbeats (its default: 80% of the heartbeat
 * timeout, up to 60 s). A step hears that its job was cancelled only in the answer to a
 * heartbeat it sent: a reconcile (60 s timeout) ran on for 48 s after an operator's cancel,
 * often to the end of its scope. One heartbeat call every 2 s per running step costs nothing.
 */
export const HEARTBEAT_THROTTLE_MAX = '2 seconds';

/** How long a stopping worker lets its running steps finish before it cancels them. */
export const WORKER_SHUTDOWN_GRACE_MS = 20_000;

export interface WorkerService {
  worker: Worker;
  /** Resolves when the worker has stopped (after shutdown() or a fatal error). */
  run(): Promise<void>;
  close(): Promise<void>;
}

/** The worker was asked to stop (`signal`) while it waited for Temporal: nothing had started. */
export class WorkerStartAbortedError extends Error {
  override readonly name = 'WorkerStartAbortedError';
  constructor() {
    super('stopped while waiting for Temporal; nothing had started');
  }
}

/**
 * Connects to Temporal, waiting out an outage; refused credentials or a TLS mismatch stop
 * start-up with what to fix. `signal` ends the wait at once, even inside an attempt (one
 * against an address that never answers takes some 30 s): the SDK's runtime takes SIGTERM
 * and SIGINT over while an attempt runs, and without a worker to stop it only noted them, so
 * a stop asked for then was lost and the worker went on to poll.
 */
async function connectToTemporal(config: Config, logger: Logger, signal?: AbortSignal): Promise<NativeConnection> {
  const connecting = connectAtStartup(() => NativeConnection.connect(temporalConnectionOptions(config)), {
    async fatal(err) {
      const explained = await withHint(err, config, `the worker could not connect to Temporal at ${config.temporal.address}`);
      return explained !== err || !isTemporalUnreachable(err) ? explained : undefined;
    },
    onWait: (err, attempt, retryInMs) =>
      logger.warn({ err, attempt, retryInMs, address: config.temporal.address }, 'Temporal cannot be reached; waiting for it before polling (check TEMPORAL_ADDRESS if this goes on)'),
    signal,
    // An attempt that succeeds after all is closed, not left holding the runtime.
    discard: (late) => late.close(),
  });
  return connecting.catch((err: unknown) => {
    throw signal?.aborted ? new WorkerStartAbortedError() : err;
  });
}

/** `signal` stops a start that still waits for Temporal (WorkerStartAbortedError). */
export async function createWorkerService(config: Config, logger: Logger, taskQueue = config.temporal.taskQueue, signal?: AbortSignal): Promise<WorkerService> {
  const connection = await connectToTemporal(config, logger, signal);
  const lacking = await missingSearchAttributes(connection.operatorService, config.temporal.namespace).catch((err: unknown) => {
    // A server that does not let this worker list them (an API key without the operator's
    // rights) is not refused: the server then refuses a job's workflow tasks, HuntWorkflowTaskRefused.
    logger.warn({ err, namespace: config.temporal.namespace }, 'could not check the namespace for the jobs\' search attributes; going on');
    return [];
  });
  if (lacking.length > 0) {
    await connection.close();
    throw new Error(
      `the Temporal namespace ${config.temporal.namespace} lacks the search attributes ${lacking.join(', ')}, which every job sets: ` +
        `each job's workflow tasks would fail and retry for ever. Register them (${registerCommand(config.temporal.namespace, lacking)}), then start the worker again`,
    );
  }
  const pool = createWorkerPool(config, (err) => logger.warn({ err }, 'Postgres connection lost; it will be replaced'));
  // Unchecked during an outage: the steps retry until Postgres is back. Said, though: the
  // checks are not made again while this worker runs.
  const mismatch = await schemaMismatch(pool)
    .then(async (schema) => schema ?? (await seqOrderProblem(pool)) ?? (await sequenceProblemAtStartup(pool, logger)))
    .catch((err: unknown) => {
      logger.warn({ err }, "could not check Postgres at start-up (its schema's version, its sequences); starting without those checks: restart the worker once Postgres answers to have them made");
      return undefined;
    });
  if (mismatch) {
    await Promise.all([pool.end(), connection.close()]);
    throw new Error(`the worker cannot use Postgres: ${mismatch}`);
  }
  const kafka = createKafka(config, logger);
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue,
    workflowsPath: path.join(projectRoot, 'workflows/index.ts'),
    activities: createActivities({ pool, kafka, config, logger }),
    // Each step's memory is bounded (a backfill's chunks, a replay's 8 MiB batches); the
    // process's is that bound times this. The SDK's default of 100 let five backfills
    // started from the Web UI take well over a gigabyte. Steps past it wait in the queue.
    maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentActivities,
    interceptors: { activity: [scrubActivityFailures] },
    // Long activities heartbeat; give a stopping worker time to finish its chunk.
    shutdownGraceTime: WORKER_SHUTDOWN_GRACE_MS,
    // Then cancelled; a step that does not end even so (a query on a Postgres that never
    // answers) would keep the process alive for ever. run() then rejects, and `hunt worker`
    // exits non-zero: its steps' retries run on the other workers, or on this one restarted.
    shutdownForceTime: '30 seconds',
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE_MAX,
  });
  const pruner = startJobRecordsPruner(pool, config.worker.jobRecordsKeepDays, logger);
  const stepAttempts = startStepAttemptsMonitor({ connect: () => connectClient(config), taskQueue, gauge: stepAttemptsGauge(), passGauge: stepAttemptsPassGauge(), logger });
  return {
    worker,
    run: () => worker.run(),
    async close() {
      await Promise.all([pruner.stop(), stepAttempts.stop()]);
      await connection.close();
      await pool.end();
    },
  };
}
