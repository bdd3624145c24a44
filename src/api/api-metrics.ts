/** The read API's own metrics: responses by status code, and how long requests take. */
import { Counter, Histogram, type Registry } from 'prom-client';

/** Routes as labels: a fixed few, whatever paths clients send. */
export type RouteLabel = 'leaderboard' | 'player' | 'healthz' | 'readyz' | 'metrics' | 'other';

export interface ApiMetrics {
  responses: Counter<'code'>;
  requestSeconds: Histogram<'route'>;
}

export function createApiMetrics(registry: Registry): ApiMetrics {
  return {
    responses: new Counter({
      name: 'hunt_api_responses_total',
      help: 'Read API responses by HTTP status code (the codes the API sends are a fixed few)',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    requestSeconds: new Histogram({
      name: 'hunt_api_request_seconds',
      help: 'Read API requests from their headers parsed to their answer sent, by route',
      labelNames: ['route'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}

export function routeLabel(url: string | undefined): RouteLabel {
  const path = (url ?? '').split('?')[0] ?? '';
  if (/^\/hunts\/[^/]+\/leaderboard\/?$/.test(path)) return 'leaderboard';
  if (/^\/hunts\/[^/]+\/players\/[^/]+\/?$/.test(path)) return 'player';
  if (path === '/healthz' || path === '/readyz' || path === '/metrics') return path.slice(1) as RouteLabel;
  return 'other';
}
