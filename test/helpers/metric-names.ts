/**
 * Which metric names exist, for tests of the ops pack (alert rules, Grafana dashboard): a
 * PromQL expression over a misspelt or renamed metric is silently empty, so an alert never
 * fires and a panel shows "No data" as if all were well.
 */
import http from 'node:http';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { createApiMetrics, registerChangeFeedGauge } from '../../src/api/api-metrics';
import { applyHttpLimits } from '../../src/api/http-limits';
import { startStoreGauges } from '../../src/api/store-metrics';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/log';
import { STEP_ATTEMPTS_METRIC, STEP_ATTEMPTS_PASS_METRIC } from '../../src/worker/step-attempts';

/**
 * What `hunt ingest` serves on /metrics: the hot path's metrics, the gauges read from
 * Postgres, the read API's own and Node's defaults, taken from the registries themselves
 * (histograms and summaries with their _bucket/_sum/_count series).
 */
export async function projectMetricNames(): Promise<Set<string>> {
  const registry = new Registry();
  createIngestMetrics(registry);
  createApiMetrics(registry, () => ({ streams: 0, slowStreamsDropped: 0, failedReads: 0, firstReadFailures: 0, huntsFailing: 0 }));
  registerChangeFeedGauge(registry, () => true);
  applyHttpLimits(http.createServer(), loadConfig({}).api, registry);
  // The store gauges read Postgres on a timer; here they read nothing, once.
  const gauges = startStoreGauges(registry, { query: async () => ({ rows: [] }) } as unknown as pg.Pool, 60_000, createLogger({ logLevel: 'silent' }));
  await gauges.firstRefresh;
  gauges.stop();
  const names = new Set<string>();
  for (const { name, type } of await registry.getMetricsAsJSON()) {
    names.add(name);
    if (String(type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    if (String(type) === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

/**
 * The Temporal SDK's worker metrics (the TypeScript SDK's core, @temporalio/worker 1.24,
 * served on WORKER_METRICS_PORT; durations in milliseconds). Checked against
 * https://docs.temporal.io/references/sdk-metrics and a scrape of `hunt worker` running jobs,
 * some failing. Histograms are listed with their series suffixes.
 */
const temporalHistograms = [
  'temporal_request_latency',
  'temporal_long_request_latency',
  'temporal_workflow_endtoend_latency',
  'temporal_workflow_task_schedule_to_start_latency',
  'temporal_workflow_task_execution_latency',
  'temporal_workflow_task_replay_latency',
  'temporal_activity_schedule_to_start_latency',
  'temporal_activity_execution_latency',
  'temporal_activity_succeed_endtoend_latency',
  'temporal_local_activity_execution_latency',
];
export const TEMPORAL_SDK_METRICS: ReadonlySet<string> = new Set([
  'temporal_request',
  'temporal_request_failure',
  'temporal_long_request',
  'temporal_long_request_failure',
  'temporal_worker_start',
  'temporal_num_pollers',
  'temporal_worker_task_slots_available',
  'temporal_worker_task_slots_used',
  'temporal_sticky_cache_hit',
  'temporal_sticky_cache_miss',
  'temporal_sticky_cache_size',
  'temporal_sticky_cache_total_forced_eviction',
  'temporal_workflow_completed',
  'temporal_workflow_failed',
  'temporal_workflow_canceled',
  'temporal_workflow_continue_as_new',
  'temporal_workflow_task_queue_poll_succeed',
  'temporal_workflow_task_queue_poll_empty',
  'temporal_workflow_task_execution_failed',
  'temporal_activity_task_received',
  'temporal_activity_poll_no_task',
  'temporal_activity_execution_failed',
  'temporal_activity_execution_cancelled',
  'temporal_local_activity_total',
  'temporal_local_activity_execution_failed',
  'temporal_local_activity_execution_cancelled',
  ...temporalHistograms.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
]);

/** What `hunt worker` serves on WORKER_METRICS_PORT besides the SDK's own: its gauges made on the SDK's meter. */
export const WORKER_OWN_METRICS: ReadonlySet<string> = new Set([STEP_ATTEMPTS_METRIC, STEP_ATTEMPTS_PASS_METRIC]);

/** What Prometheus adds to every scrape target. */
export const PROMETHEUS_SERIES: ReadonlySet<string> = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/**
 * The metric names a PromQL expression reads: identifiers that are not functions, keywords,
 * label names in matchers or groupings, strings, durations or Grafana variables.
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // strings
    .replace(/\$\{?\w+(?::\w+)?\}?/g, '1m') // Grafana variables such as $__rate_interval
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // groupings
  const names = new Set<string>();
  for (const match of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = match[0];
    const rest = stripped.slice((match.index ?? 0) + word.length);
    if (/^\s*\(/.test(rest)) continue; // a function or an aggregation
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    if (/\d$/.test(stripped.slice(0, match.index).trimEnd().slice(-1)) && /^(ms|s|m|h|d|w|y)$/.test(word)) continue; // offset 30m
    names.add(word);
  }
  return [...names];
}
