/**
 * The read API as the ingest process runs it: the HTTP server with its limits, listening on
 * API_BIND_ADDRESS:API_PORT (and /healthz, /readyz and /metrics alone on API_OPS_PORT, when
 * set: ops-server.ts), with a Postgres pool of its own.
 *
 * The pool is what keeps readers and the hot path apart: the commit lanes have theirs, so a
 * flood of leaderboard reads can wait only on the API's few connections (API_DB_POOL_SIZE),
 * never on a lane's; each read has a time limit (API_STATEMENT_TIMEOUT_MS), and a request
 * that finds no free connection within API_DB_WAIT_MS gets a 503 instead of a queue place.
 * Live leaderboard streams share one LISTEN connection on the hunt change feed besides.
 */
import type http from 'node:http';
import type { Registry } from 'prom-client';
import type { Config } from '../config';
import type { Logger } from '../log';
import { pgClientConfig } from '../store/pg-connection';
import { leaderboardPages } from '../store/read/leaderboard';
import { createPool } from '../store/pool';
import { withTimeout } from '../time-limit';
import { registerChangeFeedGauge } from './api-metrics';
import { ChangeListener } from './change-listener';
import { LeaderboardStreams } from './leaderboard-streams';
import { ReplyCache } from './reply-cache';
import { createOpsServer } from './ops-server';
import { createApiServer, type ApiDeps } from './server';
import { everyFewSeconds } from './throttle';
import { startStoreGauges } from './store-metrics';

export class ApiListenError extends Error {
  override readonly name = 'ApiListenError';
}

export interface ReadApi {
  /** Where this machine reaches the API (for messages and tests). */
  url: string;
  /** Where it reaches the ops listener, when API_OPS_PORT is set. */
  opsUrl?: string;
  close(): Promise<void>;
}

export async function startReadApi(
  config: Config,
  deps: { registry: Registry; logger: Logger; readiness: ApiDeps['readiness'] },
): Promise<ReadApi> {
  const { api } = config;
  const pool = createPool(config, api.dbPoolSize, (err) => deps.logger.warn({ err }, 'read API: Postgres connection lost; it will be replaced'), {
    statement_timeout: api.statementTimeoutMs,
    // The server enforces statement_timeout; a connection gone dead on the way never answers,
    // so the client gives up a second later (and pg-pool drops that connection).
    query_timeout: api.statementTimeoutMs + 1000,
    connectionTimeoutMillis: api.dbWaitMs,
    application_name: 'hunt-read-api',
  });
  const leaderboardCache = new ReplyCache(api.leaderboardCacheMs);
  const streams = new LeaderboardStreams({
    // Never through the reply cache: a push must show the change that caused it.
    read: (requests) => leaderboardPages(pool, requests),
    // A client that sees a push and then asks must not be answered from before it.
    onDelivering: (huntIds, readStartedAt) => leaderboardCache.invalidate(huntIds, readStartedAt),
    logger: deps.logger,
    heartbeatMs: api.streamHeartbeatMs,
  });
  const changes = new ChangeListener({ ...pgClientConfig(config), application_name: 'hunt-change-feed' }, (hunts) => streams.changed(hunts), deps.logger);
  registerChangeFeedGauge(deps.registry, () => changes.listening);
  const server = createApiServer(
    { pool, leaderboardCache, streams, maxStreams: api.maxStreams, registry: deps.registry, logger: deps.logger, readiness: deps.readiness },
    api,
  );
  const opsServer = api.opsPort === undefined ? undefined : createOpsServer({ registry: deps.registry, readiness: deps.readiness }, api);
  try {
    await listen(server, api.bindAddress, api.port, 'API_PORT');
    if (opsServer && api.opsPort !== undefined) await listen(opsServer, api.bindAddress, api.opsPort, 'API_OPS_PORT');
    // After listening, an error of the server (EMFILE on accept, with a file limit below the
    // connections allowed) is logged: unheard, it would end the process. A line per few
    // seconds at most: out of file descriptors, every connection tried is one.
    const reportServerError = everyFewSeconds((count: number, err: unknown, which: string) => deps.logger.error({ err, count }, `read API ${which}server error; it goes on serving`));
    server.on('error', (err) => reportServerError(err, ''));
    opsServer?.on('error', (err) => reportServerError(err, 'ops '));
    await changes.start();
  } catch (err) {
    streams.close();
    await changes.stop();
    await Promise.all([server, opsServer].map((s) => s?.listening && new Promise((resolve) => s.close(resolve))));
    await pool.end().catch(() => undefined);
    throw err;
  }
  const gauges = startStoreGauges(deps.registry, pool, api.metricsRefreshMs, deps.logger);
  const anyInterface = api.bindAddress === '0.0.0.0' || api.bindAddress === '::';
  const host = anyInterface ? '127.0.0.1' : api.bindAddress.includes(':') ? `[${api.bindAddress}]` : api.bindAddress;
  return {
    url: `http://${host}:${api.port}`,
    opsUrl: api.opsPort === undefined ? undefined : `http://${host}:${api.opsPort}`,
    async close() {
      gauges.stop();
      streams.close();
      await changes.stop();
      await Promise.all(
        [server, opsServer].map(
          (s) =>
            s &&
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              // Keep-alive and slow clients would hold close() open; they get no more answers.
              s.closeAllConnections();
            }),
        ),
      );
      // Bounded: end() waits for reads in flight, each up to API_STATEMENT_TIMEOUT_MS (as much
      // as 10 minutes), and the consumer is stopped after this, within the stop's deadline; a
      // read left running is the server's to end, and the process exits.
      await withTimeout(pool.end(), POOL_END_WAIT_MS).catch(() => undefined);
    },
  };
}

/** How long a stop waits for the read API's reads in flight. */
const POOL_END_WAIT_MS = 2000;

function listen(server: http.Server, address: string, port: number, variable: 'API_PORT' | 'API_OPS_PORT'): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new ApiListenError(`${variable} ${port} is already in use on ${address}: stop what holds it or set ${variable} to a free port`));
      else if (err.code === 'EACCES') reject(new ApiListenError(`${variable} ${port} needs privileges this process lacks: set ${variable} to a port above 1023`));
      else if (err.code === 'EADDRNOTAVAIL') reject(new ApiListenError(`API_BIND_ADDRESS ${address} is not an address of this machine: set it to one (0.0.0.0 for every interface)`));
      else reject(err);
    });
    server.listen(port, address, () => resolve());
  });
}
