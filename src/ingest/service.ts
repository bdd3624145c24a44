/**
 * The ingest process: the hot path consumer plus the read API, with readiness that checks
 * Postgres, Kafka and the consumer. Used by `hunt ingest` and `hunt start`.
 */
import type http from 'node:http';
import type { Config } from '../config';
import { createApiServer } from '../api/server';
import { registerStoreGauges } from '../api/store-metrics';
import { createLogger, type Logger } from '../log';
import { createPool } from '../store/pool';
import { startIngest } from './consumer';
import { createKafka } from './kafka-client';
import { createIngestMetrics } from './metrics';
import { ensureTopics } from './topics';

export interface IngestService {
  apiUrl: string;
  stop(): Promise<void>;
}

export async function runIngestService(config: Config, logger: Logger = createLogger(config, 'ingest')): Promise<IngestService> {
  const pool = createPool(config, 10, (err) => logger.warn({ err }, 'Postgres connection lost; it will be replaced'));
  const kafka = createKafka(config, logger);
  const metrics = createIngestMetrics();
  registerStoreGauges(metrics.registry, pool);
  await ensureTopics(kafka, [config.kafka.topics.events, config.kafka.topics.dlq]);
  const ingest = await startIngest({ config, pool, kafka, metrics, logger });
  const admin = kafka.admin();
  await admin.connect();

  const server: http.Server = createApiServer({
    pool,
    registry: metrics.registry,
    logger,
    readiness: async () => {
      const checks: Record<string, string> = {};
      checks.postgres = await pool.query('SELECT 1').then(
        () => 'ok',
        (err: Error) => `unreachable: ${err.message}`,
      );
      checks.kafka = await withTimeout(admin.describeCluster(), 2000).then(
        () => 'ok',
        (err: Error) => `unreachable: ${err.message}`,
      );
      checks.consumer = ingest.isRunning() ? 'ok' : 'not running';
      return { ready: Object.values(checks).every((c) => c === 'ok'), checks };
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.api.port, '0.0.0.0', () => resolve());
  });
  const apiUrl = `http://127.0.0.1:${config.api.port}`;
  logger.info({ apiUrl }, 'read API listening');

  return {
    apiUrl,
    async stop() {
      server.close();
      await ingest.stop();
      await admin.disconnect().catch(() => undefined);
      await pool.end();
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref()),
  ]);
}
