/**
 * The ingest process: the hot path consumer plus the read API, with readiness that checks
 * Postgres, Kafka and the consumer. Used by `hunt ingest` and `hunt start`.
 *
 * The API port is bound first: a process that cannot serve /readyz and /metrics must not
 * consume either, since nobody would see it stall. Any start-up failure stops what had
 * started and is thrown with a message that says what to fix.
 */
import type http from 'node:http';
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import type { Config } from '../config';
import { createApiServer } from '../api/server';
import { registerStoreGauges } from '../api/store-metrics';
import { createLogger, type Logger } from '../log';
import { createPool } from '../store/pool';
import { startIngest, type IngestHandle } from './consumer';
import { FreshnessTally, startFreshnessRecorder } from './freshness-tally';
import { createKafka } from './kafka-client';
import { createIngestMetrics } from './metrics';
import { prepareTopics } from './topics';

export interface IngestService {
  apiUrl: string;
  /** Rejects if the consumer dies for good; the process should then stop. */
  readonly failed: Promise<never>;
  stop(): Promise<void>;
}

export class StartupError extends Error {
  override readonly name = 'StartupError';
}

export async function runIngestService(config: Config, logger: Logger = createLogger(config, 'ingest')): Promise<IngestService> {
  const pool = createPool(config, 10, (err) => logger.warn({ err }, 'Postgres connection lost; it will be replaced'));
  const kafka = createKafka(config, logger);
  const metrics = createIngestMetrics();
  registerStoreGauges(metrics.registry, pool);
  const admin = kafka.admin();
  const freshness = new FreshnessTally(config.slo.freshnessTargetMs);
  let ingest: IngestHandle | undefined;

  const server: http.Server = createApiServer({
    pool,
    registry: metrics.registry,
    logger,
    readiness: () => readiness(pool, admin, ingest, logger),
  });
  try {
    await listen(server, config.api.port);
    await admin.connect();
    const topicLimits = await prepareTopics(kafka, config.kafka.topics, { mayAlterDlq: !config.external.kafkaBrokers, logger });
    ingest = await startIngest({ config, pool, kafka, metrics, logger, topicLimits, freshness });
  } catch (err) {
    server.close();
    await admin.disconnect().catch(() => undefined);
    await pool.end().catch(() => undefined);
    throw err;
  }
  const apiUrl = `http://127.0.0.1:${config.api.port}`;
  logger.info({ apiUrl }, 'read API listening');
  const running = ingest;
  const freshnessRecorder = startFreshnessRecorder({ pool, tally: freshness, logger });

  return {
    apiUrl,
    failed: running.failed,
    async stop() {
      server.close();
      await running.stop();
      // After the last commit, so its counts are stored too.
      await freshnessRecorder.stop();
      await admin.disconnect().catch(() => undefined);
      await pool.end();
    },
  };
}

function listen(server: http.Server, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new StartupError(`API_PORT ${port} is already in use: stop what holds it or set API_PORT to a free port`));
      else if (err.code === 'EACCES') reject(new StartupError(`API_PORT ${port} needs privileges this process lacks: set API_PORT to a port above 1023`));
      else reject(err);
    });
    server.listen(port, '0.0.0.0', () => resolve());
  });
}

/** Postgres and Kafka reachable, the consumer running and not stalled; reasons without internals. */
async function readiness(pool: pg.Pool, admin: Admin, ingest: IngestHandle | undefined, logger: Logger) {
  const checks: Record<string, string> = {};
  checks.postgres = await pool.query('SELECT 1').then(
    () => 'ok',
    (err: unknown) => {
      logger.warn({ err }, 'readiness: Postgres unreachable');
      return 'unreachable';
    },
  );
  checks.kafka = await withTimeout(admin.describeCluster(), 2000).then(
    () => 'ok',
    (err: unknown) => {
      logger.warn({ err }, 'readiness: Kafka unreachable');
      return 'unreachable';
    },
  );
  const consumer = ingest ? ingest.readiness() : { ready: false as const, reason: 'the consumer is starting' };
  checks.consumer = consumer.ready ? 'ok' : consumer.reason;
  const failing = Object.entries(checks).filter(([, state]) => state !== 'ok');
  const ready = failing.length === 0;
  return { ready, checks, error: ready ? undefined : failing.map(([name, state]) => `${name}: ${state}`).join('; ') };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref()),
  ]);
}
