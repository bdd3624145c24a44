/**
 * Workflow entry point for the worker's bundle. Deterministic code only: activities are
 * reached through proxies, and only their types are imported.
 */
export { healthCheck } from './health-check';
export { rollupFlush } from './rollup-flush';
export { backfill } from './backfill';
export { dlqReplay } from './dlq-replay';
export { reconcile } from './reconcile';
export { dataQuality } from './data-quality';
export { reprocess } from './reprocess';
