/** The read API's own metrics: responses by status code, and how long requests take. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { pathSegments } from './path-segments';

/** Routes as labels: a fixed few, whatever paths clients send. */
export type RouteLabel = 'leaderboard' | 'stream' | 'page' | 'player' | 'healthz' | 'readyz' | 'metrics' | 'other';

export interface ApiMetrics {
  /** By code and route: a read API failing its clients shows apart from /readyz answering 503 for a stall. */
  responses: Counter<'code' | 'route'>;
  /** Not observed for streams: they last as long as their client stays. */
  requestSeconds: Histogram<'route'>;
  streamsOpen: Gauge;
  streamsDroppedSlow: Counter;
  streamReadFailures: Counter;
  streamFirstReadFailures: Counter;
  streamHuntsFailing: Gauge;
  /** By reason: the streams' cap, or a stream pipelined behind another response. */
  streamsRefused: Counter<'reason'>;
  connectionsCutUnread: Counter;
}

/** What the live streams report, read at each scrape (the totals are running totals). */
export interface StreamFigures {
  streams: number;
  slowStreamsDropped: number;
  failedReads: number;
  firstReadFailures: number;
  huntsFailing: number;
}

export function createApiMetrics(registry: Registry, streams: () => StreamFigures): ApiMetrics {
  return {
    responses: new Counter({
      name: 'hunt_api_responses_total',
      help: 'Read API responses by HTTP status code and route (both a fixed few)',
      labelNames: ['code', 'route'] as const,
      registers: [registry],
    }),
    requestSeconds: new Histogram({
      name: 'hunt_api_request_seconds',
      help: 'Read API requests from their headers parsed to their answer sent, by route',
      labelNames: ['route'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    streamsOpen: new Gauge({
      name: 'hunt_api_streams_open',
      help: 'Live leaderboard streams open (at most API_MAX_STREAMS)',
      registers: [registry],
      collect() {
        this.set(streams().streams);
      },
    }),
    streamsDroppedSlow: runningTotal(
      registry,
      'hunt_api_streams_dropped_slow_total',
      'Live leaderboard streams closed because their client stopped reading (the socket stayed full for two heartbeats)',
      () => streams().slowStreamsDropped,
    ),
    streamReadFailures: runningTotal(
      registry,
      'hunt_api_stream_read_failures_total',
      'Live leaderboard reads that failed (tried again in the next window, each hunt alone)',
      () => streams().failedReads,
    ),
    streamFirstReadFailures: runningTotal(
      registry,
      'hunt_api_stream_first_reads_failed_total',
      'Live leaderboard streams closed after their 200 because their first read failed (their clients reconnect); HuntReadApiFailing counts them as failed reads',
      () => streams().firstReadFailures,
    ),
    streamsRefused: new Counter({
      name: 'hunt_api_streams_refused_total',
      help: 'Live leaderboard streams refused (a 200 with retry: that ends at once, so EventSource clients come back), by reason: full (API_MAX_STREAMS open) or pipelined',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    connectionsCutUnread: new Counter({
      name: 'hunt_api_connections_cut_unread_total',
      help: 'Read API connections closed because their client left an answer unread past API_REQUEST_TIMEOUT_MS',
      registers: [registry],
    }),
    streamHuntsFailing: new Gauge({
      name: 'hunt_api_stream_hunts_failing',
      help: 'Hunts whose live streams push no changes because their leaderboard read fails, read alone',
      registers: [registry],
      collect() {
        this.set(streams().huntsFailing);
      },
    }),
  };
}

/** A counter of a total kept elsewhere, brought up to it at each scrape. */
function runningTotal(registry: Registry, name: string, help: string, total: () => number): Counter {
  let seen = 0;
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = total();
      this.inc(now - seen);
      seen = now;
    },
  });
}

/**
 * 1 while the live streams' change feed listens, 0 while it is lost and being opened again:
 * streams then keep their clients with heartbeats but push nothing, which no answer shows.
 */
export function registerChangeFeedGauge(registry: Registry, listening: () => boolean): Gauge {
  return new Gauge({
    name: 'hunt_api_change_feed_listening',
    help: 'Whether the live leaderboard streams hear committed changes (1) or their LISTEN connection is lost and being opened again (0)',
    registers: [registry],
    collect() {
      this.set(listening() ? 1 : 0);
    },
  });
}

/**
 * The route a request goes to, as a label: split and percent-decoded as the router does
 * (pathSegments), so `//hunts/h/leaderboard/%73tream` is a stream here as it is there (a
 * stream labelled `other` had its whole life timed as one request).
 */
export function routeLabel(url: string | undefined): RouteLabel {
  const target = url ?? '';
  if (!target.startsWith('/')) return 'other';
  const queryAt = target.indexOf('?');
  const pathname = queryAt < 0 ? target : target.slice(0, queryAt);
  if (pathname === '/healthz' || pathname === '/readyz' || pathname === '/metrics') return pathname.slice(1) as RouteLabel;
  const parts = pathSegments(pathname);
  if (parts?.[0] !== 'hunts') return 'other'; // undefined: a 400
  if (parts.length === 2) return 'page';
  if (parts.length === 3 && parts[2] === 'leaderboard') return 'leaderboard';
  if (parts.length === 4 && parts[2] === 'leaderboard' && parts[3] === 'stream') return 'stream';
  if (parts.length === 4 && parts[2] === 'players') return 'player';
  return 'other';
}
