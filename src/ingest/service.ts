/**
 * The ingest process: the hot path consumer plus the read API, with readiness that checks
 * Postgres, Kafka and the consumer. Used by `hunt ingest` and `hunt start`.
 *
 * The API port is bound first: a process that cannot serve /readyz and /metrics must not
 * consume either, since nobody would see it stall. Any start-up failure stops what had
 * started and is thrown with a message that says what to fix (a refused password, an
 * untrusted certificate), never with a secret.
 */
import type { Admin, Kafka } from 'kafkajs';
import type pg from 'pg';
import type { Config } from '../config';
import { ApiListenError, startReadApi, type ReadApi } from '../api/read-api';
import { everyFewSeconds, sharedProbe } from '../api/throttle';
import { createLogger, type Logger } from '../log';
import { sequenceProblemAtStartup } from '../store/serial-sequences';
import { schemaMismatch } from '../store/migrate';
import { SqlState, sqlStateOf } from '../store/sql-state';
import type { PostgresTarget } from '../store/pg-connection';
import { withTimeout } from '../time-limit';
import { createPool, IDLE_IN_TRANSACTION_LIMIT_MS, nonUtf8Encoding, pingFailure, pingPostgres, processApplicationName, UTF8_REQUIRED } from '../store/pool';
import { startIngest, type IngestHandle } from './consumer';
import { FreshnessTally, startFreshnessRecorder } from './freshness-tally';
import { ConnectionSettingsError, explainKafkaError, explainPostgresError, KAFKA_TLS_HANDSHAKE_HINT, kafkaClosedConnectionHint } from '../connection-hints';
import { createKafka, isKafkaOutage, withKafkaHint, type KafkaErrorListener } from '../pipeline/kafka-client';
import { watchStartup } from './health';
import { createIngestMetrics } from './metrics';
import { prepareTopics, type PreparedTopics } from './topics';
import { connectAtStartup } from '../backoff';
import { keepServerSideAlive, watchSilentSessions } from '../store/silent-sessions';

export interface IngestService {
  apiUrl: string;
  /** Rejects if the consumer dies for good; the process should then stop. */
  readonly failed: Promise<never>;
  stop(): Promise<void>;
}

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/**
 * No hot-path statement runs for long: a micro-batch commits in well under a second, and waits
 * at most a reprocess fence's 5 s. One with no answer after 2 minutes is on a connection that
 * died without a word; failing it lets the lane retry on a new connection instead of waiting
 * for ever (a retried micro-batch changes nothing twice: eventIds, offsets that only grow).
 */
const HOT_PATH_QUERY_TIMEOUT_MS = 120_000;
/**
 * The hot path's own statement limit, set on its sessions. Below the client's query timeout,
 * so Postgres cancels a statement before the client gives up on it: a statement the client
 * abandoned ran on holding its hunts' rows, and the retry queued behind it. (The pipelined
 * commit writes a micro-batch's statements at once, so the client's clock for the store
 * starts before the fence lock ahead of it has waited: the 10 s between the two limits is
 * for that wait, at most a reprocess fence's 5 s.) And explicit, so a
 * role's or database's default (managed Postgres often sets one) never applies: one shorter
 * than a full micro-batch failed the same batch on every retry while the lane stood still.
 */
const HOT_PATH_STATEMENT_TIMEOUT_MS = 110_000;
/**
 * The same for a new connection: a Postgres that accepts the socket and never answers (a
 * frozen server) would hold a lane's connect, and a stop's last commit, for ever.
 */
const HOT_PATH_CONNECT_TIMEOUT_MS = 10_000;

/**
 * A connection per commit lane, and four for what runs beside them (start-up checks, the
 * stored positions after a join, the monitor, the freshness recorder, readiness pings); at
 * least the 10 it always had. Fewer than the lanes would leave lanes waiting for a connection.
 */
function ingestPoolSize(commitLanes: number): number {
  return Math.max(10, commitLanes + 4);
}

/**
 * The hot path's pool, in pg's pipeline mode: a query is written as soon as it is issued,
 * without waiting for the one before to answer, so a micro-batch's transaction costs two
 * round trips (src/pipeline/commit.ts; experiments §27). Code that awaits each query, as
 * everything else here does, behaves as without it.
 * `idleInTransactionMs` (IDLE_IN_TRANSACTION_LIMIT_MS; tests pass less):
 * a member frozen or cut off mid-commit holds hunts' and players' rows, and the other members'
 * lanes (its partitions too, once reassigned) and the batch plane's fences would wait on it
 * for ever. Named for pg_stat_activity and the lock-holder messages.
 */
export function createIngestPool(
  target: PostgresTarget,
  commitLanes: number,
  onConnectionLost: (err: Error) => void,
  idleInTransactionMs = IDLE_IN_TRANSACTION_LIMIT_MS,
): pg.Pool {
  const pool = createPool(target, ingestPoolSize(commitLanes), onConnectionLost, {
    query_timeout: HOT_PATH_QUERY_TIMEOUT_MS,
    statement_timeout: HOT_PATH_STATEMENT_TIMEOUT_MS,
    connectionTimeoutMillis: HOT_PATH_CONNECT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: idleInTransactionMs,
    fallback_application_name: processApplicationName('hunt-ingest'),
    // A micro-batch's statements go in one write (commitMicroBatch): two round trips instead of five.
    pipeline: true,
  });
  keepServerSideAlive(pool);
  return pool;
}

/**
 * `startupSignal`: aborted, start-up stops waiting for Kafka and fails with its reason (`hunt
 * start` aborts it when the embedded Kafka it started has died: waiting on would only say
 * "check KAFKA_BROKERS", for ever).
 */
export async function runIngestService(config: Config, logger: Logger = createLogger(config, 'ingest'), startupSignal?: AbortSignal): Promise<IngestService> {
  const pool = createIngestPool(config, config.ingest.commitLanes, (err) => logger.warn({ err }, 'Postgres connection lost; it will be replaced'));
  const metrics = createIngestMetrics();
  const silentSessions = watchSilentSessions(pool, config, {
    onCut(session) {
      metrics.postgresConnectionsCut.inc();
      logger.warn(session, 'Postgres connection cut: its session was not working on the query waiting on it, and nothing moved on the connection (dead without a word); the query is retried on a new connection');
    },
    // Once a minute at most: meanwhile a connection dead without a word waits for the query timeout.
    onCheckFailed: everyFewSeconds((count: number, err: unknown) => logger.warn({ err, count }, 'could not check silent Postgres connections (Postgres unreachable, or no connection left for the check)'), 60_000),
  });
  let onKafkaError: KafkaErrorListener = () => undefined;
  const kafka = createKafka(config, logger, undefined, (message) => onKafkaError(message));
  // The DLQ producer's own client, without the listener: its errors are about the DLQ topic.
  const dlqKafka = createKafka(config, logger);
  const admin = kafka.admin();
  const freshness = new FreshnessTally(config.slo.freshnessTargetMs);
  let ingest: IngestHandle | undefined;
  let api: ReadApi | undefined;
  const startup = watchStartup(metrics, config.ingest.stallLimitMs);

  try {
    api = await startReadApi(config, {
      registry: metrics.registry,
      logger,
      // Shared and reused briefly: a flood of /readyz costs one probe of Postgres and Kafka.
      readiness: sharedProbe(readinessProbe(pool, admin, () => ingest, logger), 250),
    });
    await checkPostgresSettings(pool, logger);
    const topicLimits = await prepareKafka(admin, kafka, config, logger, startupSignal);
    ingest = await startIngest({
      config,
      pool,
      kafka,
      dlqKafka,
      metrics,
      logger,
      topicLimits,
      freshness,
      watchKafkaErrors: (listener) => (onKafkaError = listener),
      // The monitor sets the stall gauge from here on, out of the group since the process
      // began: both at once, or each counting from its own start, made it flap.
      healthReporting: () => startup.started(),
      startedAt: startup.startedAt,
    });
  } catch (err) {
    startup.started();
    await api?.close();
    await admin.disconnect().catch(() => undefined);
    await silentSessions.stop();
    await pool.end().catch(() => undefined);
    throw err instanceof ApiListenError ? new StartupError(err.message) : err;
  }
  const apiUrl = api.url;
  logger.info({ apiUrl, opsUrl: api.opsUrl }, 'read API listening');
  const running = ingest;
  const freshnessRecorder = startFreshnessRecorder({ pool, tally: freshness, logger });
  const runningApi = api;

  return {
    apiUrl,
    failed: running.failed,
    async stop() {
      await runningApi.close();
      await running.stop();
      // After the last commit, so its counts are stored too.
      await freshnessRecorder.stop();
      await admin.disconnect().catch(() => undefined);
      await silentSessions.stop();
      await pool.end();
    },
  };
}

/**
 * A wrong password or TLS setting stops start-up with what to fix; an outage does not (the
 * hot path waits those out, DESIGN invariant 3).
 */
export async function checkPostgresSettings(pool: pg.Pool, logger: Logger): Promise<void> {
  // One round trip: it proves the connection settings and reads the encoding.
  const encoding = await nonUtf8Encoding(pool).catch((err: unknown) => {
    const hint = explainPostgresError(err);
    if (hint) throw new ConnectionSettingsError(`cannot use Postgres: ${hint}`, { cause: err });
    return undefined;
  });
  if (encoding) throw new ConnectionSettingsError(`cannot use Postgres: the database's encoding is ${encoding}. ${UTF8_REQUIRED}`);
  // Reachable by now unless an outage began: then the hot path waits it out, unchecked. Said,
  // though (as the worker does): the check is not made again while this process runs.
  const mismatch = await schemaMismatch(pool).catch((err: unknown) => {
    const fix = sqlStateOf(err) === SqlState.insufficientPrivilege ? "grant this role SELECT on schema_migrations" : 'restart hunt ingest once Postgres answers to have it made';
    logger.warn({ err }, `could not check the schema's version at start-up; starting without that check: ${fix}`);
    return undefined;
  });
  if (mismatch) throw new ConnectionSettingsError(`cannot use Postgres: ${mismatch}`);
  const seqProblem = await sequenceProblemAtStartup(pool, logger);
  if (seqProblem) throw new ConnectionSettingsError(`cannot use Postgres: ${seqProblem}`);
}

/**
 * Connects to Kafka and makes sure of the topics, waiting out an outage (kafkajs's own
 * retries give up after about 13 s); /readyz says `kafka: unreachable` meanwhile. A settings
 * error (refused credentials, a certificate) or a refusal no wait cures (authorization, a DLQ
 * too small on a broker not ours) stops start-up.
 */
function prepareKafka(admin: Admin, kafka: Kafka, config: Config, logger: Logger, signal?: AbortSignal): Promise<PreparedTopics> {
  let hint: string | undefined;
  return connectAtStartup(
    async () => {
      await admin.connect();
      return prepareTopics(kafka, config.kafka.topics, { mayAlterDlq: !config.external.kafkaBrokers, logger });
    },
    {
      fatal(err) {
        hint = explainKafkaError(err, config.kafka.security);
        return !isKafkaOutage(err) || (hint !== undefined && hint !== KAFKA_TLS_HANDSHAKE_HINT) ? withKafkaHint(err, config) : undefined;
      },
      onWait: (err, attempt, retryInMs) =>
        logger.warn(
          { err, attempt, retryInMs, brokers: config.kafka.brokers, hint: hint ?? kafkaClosedConnectionHint(err, config.kafka.security) },
          'Kafka cannot be reached; waiting for it before consuming (check KAFKA_BROKERS if this goes on)',
        ),
      signal,
    },
  );
}

/** Postgres and Kafka reachable, the consumer running and not stalled; reasons without internals. */
function readinessProbe(pool: pg.Pool, admin: Admin, ingest: () => IngestHandle | undefined, logger: Logger) {
  // During an outage every probe fails; the log gets one line per service per half minute.
  const warnPostgres = everyFewSeconds((count: number, err: unknown) => logger.warn({ err, count }, 'readiness: Postgres unreachable'), 30_000);
  const warnKafka = everyFewSeconds((count: number, err: unknown) => logger.warn({ err, count }, 'readiness: Kafka unreachable'), 30_000);
  return async () => {
    const checks: Record<string, string> = {};
    const [postgres, kafka] = await Promise.all([
      withTimeout(pingPostgres(pool), 2000).then(
        () => 'ok',
        (err: unknown) => {
          warnPostgres(err);
          return pingFailure(err);
        },
      ),
      withTimeout(admin.describeCluster(), 2000).then(
        () => 'ok',
        (err: unknown) => {
          warnKafka(err);
          return 'unreachable';
        },
      ),
    ]);
    checks.postgres = postgres;
    checks.kafka = kafka;
    const running = ingest();
    const consumer = running ? running.readiness() : { ready: false as const, reason: 'the consumer is starting' };
    checks.consumer = consumer.ready ? 'ok' : consumer.reason;
    const failing = Object.entries(checks).filter(([, state]) => state !== 'ok');
    const ready = failing.length === 0;
    return { ready, checks, error: ready ? undefined : failing.map(([name, state]) => `${name}: ${state}`).join('; ') };
  };
}
