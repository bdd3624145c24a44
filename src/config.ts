/**
 * Configuration: the only module that reads process.env.
 *
 * Every variable is parsed once by zod into one typed object. A bad value stops start-up
 * with a ConfigError that names the variable and says what is expected.
 */
import path from 'node:path';
import type { z } from 'zod';
import { resolveSecretFiles, shownValue, type ConfigProblem } from './config-files';
import { kafkaSecurity, postgresSecurity, temporalSecurity, type KafkaSecurity, type PostgresSecurity, type TemporalSecurity } from './config-security';
import { projectRoot, variables, type RawConfig } from './config-variables';

export { projectRoot, type RawConfig };

export class ConfigError extends Error {
  /** `got` is already safe to print: secrets hidden, URLs without their password. */
  constructor(readonly problems: ConfigProblem[]) {
    super(
      'Invalid configuration:\n' +
        problems
          .map((p) => `  ${p.variable}: expected ${p.expected}, got ${p.got === undefined ? '(unset)' : JSON.stringify(p.got)}`)
          .join('\n'),
    );
    this.name = 'ConfigError';
  }
}

function parseVariables(env: NodeJS.ProcessEnv, problems: ConfigProblem[]): RawConfig {
  const resolved = resolveSecretFiles(env, problems);
  const out: Record<string, unknown> = {};
  for (const [name, [schema, expected]] of Object.entries(variables)) {
    // An empty string counts as unset, so `FOO= hunt ...` falls back to the default.
    const raw = resolved[name] === '' ? undefined : resolved[name];
    const result = (schema as z.ZodType).safeParse(raw);
    if (result.success) out[name] = result.data;
    else problems.push({ variable: name, expected, got: shownValue(name, raw) });
  }
  return out as RawConfig;
}

export interface Config {
  /** Services given from outside; when set, the embedded stack does not provision them. */
  external: { databaseUrl?: string; kafkaBrokers?: string[]; temporalAddress?: string };
  /** Never holds a password given through DATABASE_PASSWORD(_FILE): that is in `postgres`. */
  databaseUrl: string;
  /** Password and TLS for Postgres (src/store/pg-connection.ts applies them). */
  postgres: PostgresSecurity;
  kafka: { brokers: string[]; clientId: string; topics: { events: string; dlq: string }; security: KafkaSecurity };
  temporal: { address: string; namespace: string; taskQueue: string; uiUrl?: string; security: TemporalSecurity };
  api: {
    port: number;
    /** A second listener for /healthz, /readyz and /metrics alone, out of the public's reach (its connection cap). */
    opsPort?: number;
    bindAddress: string;
    /** Most time a client may take to send a request's headers, and the whole request. */
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    keepAliveTimeoutMs: number;
    /** Requests served on one connection before it is closed (0: no limit). */
    maxRequestsPerSocket: number;
    /** Open connections beyond this are closed at once. */
    maxConnections: number;
    /** The read API's own Postgres pool: its size, each query's time limit, and the longest wait for a free connection. */
    dbPoolSize: number;
    statementTimeoutMs: number;
    dbWaitMs: number;
    /** How long a leaderboard answer is shared by identical requests (0: only while its query runs). */
    leaderboardCacheMs: number;
    /** Live leaderboard streams open at once (more get a 503: each holds a connection), and the idle comment interval. */
    maxStreams: number;
    streamHeartbeatMs: number;
    /** How often /metrics's values read from Postgres are refreshed (a scrape never queries). */
    metricsRefreshMs: number;
  };
  ingest: {
    groupId: string;
    /** fixed: close batches on size or linger; adaptive: size them to the freshness target. */
    batchMode: RawConfig['INGEST_BATCH_MODE'];
    maxBatchEvents: number;
    lingerMs: number;
    freshnessTargetMs: number;
    fetchMaxBytes: number;
    partitionFetchMaxBytes: number;
    partitionsConcurrency: number;
    /** Micro-batches committing at once, each lane for its own partitions (partition mod lanes). */
    commitLanes: number;
    /** How long the group waits for a silent member (say, one killed) before rebalancing. */
    sessionTimeoutMs: number;
    /** Work uncommitted for longer than this makes /readyz answer 503. */
    stallLimitMs: number;
    /** Where a partition starts when Postgres holds no offset for it. */
    startFrom: RawConfig['INGEST_START_FROM'];
    /** When retention deleted records before they were read: go on from the log start, or stop the partition. */
    onRetentionGap: RawConfig['INGEST_ON_RETENTION_GAP'];
  };
  /** The hot path's freshness SLO: `hunt ingest` counts against the target, `hunt slo` reports. */
  slo: {
    /** An event is fresh when committed within this many ms of its Kafka timestamp. */
    freshnessTargetMs: number;
    /** The share of events that should be fresh, e.g. 0.999. */
    objective: number;
  };
  worker: {
    /** Job steps one worker runs at once: each is bounded on its own, the process by their sum. */
    maxConcurrentActivities: number;
    metricsPort?: number;
    metricsBindAddress: string;
    /** Past runs' records older than this are deleted by the workers (job-records-pruner.ts). */
    jobRecordsKeepDays: number;
  };
  backfill: {
    /** Backfill files must be regular files under this folder (resolved, symlinks followed). */
    importDir: string;
    /** Topic names, or prefixes ending in `*`, that a Kafka-range backfill may read. */
    topics: string[];
  };
  schedules: { rollupFlushEvery: string; reconcileEvery: string; dataQualityCron: string };
  logLevel: RawConfig['LOG_LEVEL'];
  logFormat: RawConfig['LOG_FORMAT'];
  stack: {
    stateDir: string;
    cacheDir: string;
    timeoutMs: number;
    postgres: { port: number; binDir?: string };
    kafka: { port: number; controllerPort: number; heap: string };
    temporal: { port: number; uiPort: number };
  };
}

/** Parses the environment (process.env by default) into the typed configuration. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: ConfigProblem[] = [];
  const v = parseVariables(env, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const security = { postgres: postgresSecurity(v, problems), kafka: kafkaSecurity(v, problems), temporal: temporalSecurity(v, problems) };
  // Streams that may take every connection leave none for /healthz, /readyz and /metrics:
  // an orchestrator would restart the process that runs the hot path.
  if (v.API_MAX_STREAMS !== undefined && v.API_MAX_STREAMS >= v.API_MAX_CONNECTIONS) {
    problems.push({ variable: 'API_MAX_STREAMS', expected: `fewer live streams than API_MAX_CONNECTIONS (${v.API_MAX_CONNECTIONS}), leaving connections for plain reads`, got: String(v.API_MAX_STREAMS) });
  }
  // The embedded Kafka and Temporal (used while no address is given) speak plain text with no
  // credentials: security settings meant for another service were tried against them, and
  // Kafka's start-up waited for ever, naming a KAFKA_BROKERS nobody had set.
  if (v.KAFKA_BROKERS === undefined && (security.kafka.tls || security.kafka.sasl)) {
    problems.push({ variable: 'KAFKA_BROKERS', expected: 'the brokers of the Kafka that the KAFKA_TLS / KAFKA_SASL_* settings are for (the embedded Kafka, used while it is unset, takes neither)', got: undefined });
  }
  if (v.TEMPORAL_ADDRESS === undefined && (security.temporal.tls || security.temporal.apiKey !== undefined)) {
    problems.push({ variable: 'TEMPORAL_ADDRESS', expected: 'the address of the Temporal that the TEMPORAL_TLS* / TEMPORAL_API_KEY settings are for (the embedded dev server, used while it is unset, takes neither)', got: undefined });
  }
  // A micro-batch waits up to the linger before its commit: near the stall limit or past it,
  // every healthy lane on light traffic looked stalled (/readyz 503, HuntIngestStalled), its
  // commit's own time adding to the wait.
  const linger = v.INGEST_BATCH_MODE === 'fixed' ? v.INGEST_LINGER_MS : Math.min(v.INGEST_LINGER_MS, Math.floor(v.INGEST_FRESHNESS_TARGET_MS / 5));
  if (linger > 0.9 * v.INGEST_STALL_LIMIT_MS) {
    problems.push({
      variable: 'INGEST_LINGER_MS',
      expected: `a linger of at most 90% of INGEST_STALL_LIMIT_MS (${v.INGEST_STALL_LIMIT_MS} ms)${v.INGEST_BATCH_MODE === 'fixed' ? '' : ', in adaptive mode the smaller of it and INGEST_FRESHNESS_TARGET_MS / 5'}, or a larger INGEST_STALL_LIMIT_MS`,
      got: String(v.INGEST_LINGER_MS),
    });
  }
  if (v.API_OPS_PORT !== undefined && v.API_OPS_PORT === v.API_PORT) {
    problems.push({ variable: 'API_OPS_PORT', expected: `a port other than API_PORT (${v.API_PORT})`, got: String(v.API_OPS_PORT) });
  }
  // Rejects copied to the input topic would be read, rejected and copied again, for ever.
  // Kafka takes '.' and '_' for the same character in topic names (their metrics collide).
  const kafkaTopicKey = (name: string) => name.replace(/\./g, '_');
  if (kafkaTopicKey(v.KAFKA_TOPIC_DLQ) === kafkaTopicKey(v.KAFKA_TOPIC_EVENTS)) {
    problems.push({ variable: 'KAFKA_TOPIC_DLQ', expected: `a topic other than KAFKA_TOPIC_EVENTS (${v.KAFKA_TOPIC_EVENTS}), which Kafka does not take for the same name`, got: v.KAFKA_TOPIC_DLQ });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const stateDir = path.resolve(v.HUNT_STATE_DIR);
  const embeddedTemporal = `127.0.0.1:${v.HUNT_TEMPORAL_PORT}`;
  return {
    external: {
      databaseUrl: v.DATABASE_URL,
      kafkaBrokers: v.KAFKA_BROKERS,
      temporalAddress: v.TEMPORAL_ADDRESS,
    },
    databaseUrl: v.DATABASE_URL ?? `postgres://hunt@127.0.0.1:${v.HUNT_PG_PORT}/hunt`,
    postgres: security.postgres,
    kafka: {
      brokers: v.KAFKA_BROKERS ?? [`127.0.0.1:${v.HUNT_KAFKA_PORT}`],
      clientId: v.KAFKA_CLIENT_ID,
      topics: { events: v.KAFKA_TOPIC_EVENTS, dlq: v.KAFKA_TOPIC_DLQ },
      security: security.kafka,
    },
    temporal: {
      address: v.TEMPORAL_ADDRESS ?? embeddedTemporal,
      namespace: v.TEMPORAL_NAMESPACE,
      taskQueue: v.TEMPORAL_TASK_QUEUE,
      uiUrl: v.TEMPORAL_ADDRESS ? undefined : `http://127.0.0.1:${v.HUNT_TEMPORAL_UI_PORT}`,
      security: security.temporal,
    },
    api: {
      port: v.API_PORT,
      opsPort: v.API_OPS_PORT,
      bindAddress: v.API_BIND_ADDRESS,
      headersTimeoutMs: v.API_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: v.API_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: v.API_KEEP_ALIVE_TIMEOUT_MS,
      maxRequestsPerSocket: v.API_MAX_REQUESTS_PER_SOCKET,
      maxConnections: v.API_MAX_CONNECTIONS,
      dbPoolSize: v.API_DB_POOL_SIZE,
      statementTimeoutMs: v.API_STATEMENT_TIMEOUT_MS,
      dbWaitMs: v.API_DB_WAIT_MS,
      leaderboardCacheMs: v.API_LEADERBOARD_CACHE_MS,
      // Three quarters, rounded down: always fewer than the connections (none with just one).
      maxStreams: v.API_MAX_STREAMS ?? Math.floor((v.API_MAX_CONNECTIONS * 3) / 4),
      streamHeartbeatMs: v.API_STREAM_HEARTBEAT_MS,
      metricsRefreshMs: v.API_METRICS_REFRESH_MS,
    },
    ingest: {
      groupId: v.INGEST_GROUP_ID,
      batchMode: v.INGEST_BATCH_MODE,
      maxBatchEvents: v.INGEST_MAX_BATCH_EVENTS,
      lingerMs: v.INGEST_LINGER_MS,
      freshnessTargetMs: v.INGEST_FRESHNESS_TARGET_MS,
      fetchMaxBytes: v.KAFKA_FETCH_MAX_BYTES,
      partitionFetchMaxBytes: v.KAFKA_PARTITION_FETCH_MAX_BYTES,
      partitionsConcurrency: v.INGEST_PARTITIONS_CONCURRENCY,
      commitLanes: v.INGEST_COMMIT_LANES,
      sessionTimeoutMs: v.INGEST_SESSION_TIMEOUT_MS,
      stallLimitMs: v.INGEST_STALL_LIMIT_MS,
      startFrom: v.INGEST_START_FROM,
      onRetentionGap: v.INGEST_ON_RETENTION_GAP,
    },
    slo: { freshnessTargetMs: v.SLO_FRESHNESS_TARGET_MS, objective: v.SLO_OBJECTIVE },
    worker: { maxConcurrentActivities: v.WORKER_MAX_CONCURRENT_ACTIVITIES, metricsPort: v.WORKER_METRICS_PORT, metricsBindAddress: v.WORKER_METRICS_BIND_ADDRESS, jobRecordsKeepDays: v.JOB_RECORDS_KEEP_DAYS },
    backfill: { importDir: path.resolve(v.BACKFILL_IMPORT_DIR ?? path.join(stateDir, 'imports')), topics: v.BACKFILL_TOPICS ?? [v.KAFKA_TOPIC_EVENTS] },
    schedules: { rollupFlushEvery: v.ROLLUP_FLUSH_EVERY, reconcileEvery: v.RECONCILE_EVERY, dataQualityCron: v.DATA_QUALITY_CRON },
    logLevel: v.LOG_LEVEL,
    logFormat: v.LOG_FORMAT,
    stack: {
      stateDir,
      cacheDir: path.resolve(v.HUNT_CACHE_DIR),
      timeoutMs: v.HUNT_STACK_TIMEOUT_MS,
      postgres: { port: v.HUNT_PG_PORT, binDir: v.HUNT_PG_BIN_DIR },
      kafka: { port: v.HUNT_KAFKA_PORT, controllerPort: v.HUNT_KAFKA_CONTROLLER_PORT, heap: v.HUNT_KAFKA_HEAP },
      temporal: { port: v.HUNT_TEMPORAL_PORT, uiPort: v.HUNT_TEMPORAL_UI_PORT },
    },
  };
}

/** The names of every variable this module reads, for docs and the compose check. */
export const configVariableNames = Object.keys(variables) as (keyof RawConfig)[];
