/** The read API's own metrics: responses by status code, and the connections it holds. */
import { Counter, type Registry } from 'prom-client';

export interface ApiMetrics {
  responses: Counter<'code'>;
}

export function createApiMetrics(registry: Registry): ApiMetrics {
  return {
    responses: new Counter({
      name: 'hunt_api_responses_total',
      help: 'Read API responses by HTTP status code (the codes the API sends are a fixed few)',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
  };
}
