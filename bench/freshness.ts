/**
 * Produce-to-commit freshness at a steady rate: a fresh topic and ingest child, a short
 * warm-up, then a steady window of generated traffic. The figure is the ingest's own
 * histogram `hunt_ingest_freshness_seconds` (commit done minus the record's Kafka
 * timestamp, which the producer sets at send), scraped before and after the window.
 *
 * A cross-check comes from Postgres: events.ingested_at minus occurred_at. ingested_at is
 * now() at the START of the micro-batch transaction, so that figure misses the transaction
 * itself and is a lower bound; it is exact per event (no buckets), which the histogram is not.
 */
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import pg from 'pg';
import { produceTraffic } from '../src/demo/produce';
import { seededRandom, TrafficGenerator } from '../src/demo/traffic';
import { IngestChild, sleep } from './lib/ingest-child';
import { fractionAtOrBelow, histogramDelta, histogramQuantile, parseHistogram, type Histogram, type Quantile } from './lib/prom';
import { cpuBetween, RssSampler, round, snapshotCpu, type CpuGroups, type CpuSplit } from './lib/procfs';
import { DiskProbe, type DiskProbeResult } from './lib/disk-probe';
import { topicEndOffsets } from './lib/resources';

/** An event whose transaction started this late waited on something beyond a micro-batch (a slow flush, a pause). */
const STALLED_EVENT_MS = 100;

export interface FreshnessOptions {
  databaseUrl: string;
  topic: string;
  groupId: string;
  rate: number;
  seconds: number;
  warmupSeconds: number;
  hunts: number;
  playersPerHunt: number;
  duplicateFraction: number;
  invalidFraction: number;
  seed: number;
  rawDir: string;
  targetMs: number;
  p50TargetMs: number;
  /** INGEST_* overrides for the child, for experiments. */
  ingestEnv?: Record<string, string>;
  cpuGroups: (childPids: number[]) => CpuGroups;
  machineCores: number;
  /** A directory on the disk Postgres writes to, for the disk probe (lib/disk-probe.ts). */
  diskProbeDir: string;
}

export interface FreshnessResult {
  sent: number;
  achievedRate: number;
  histogram: {
    p50: Quantile | undefined;
    p99: Quantile | undefined;
    /** Share at or below the p99 target (a bucket bound, so counted exactly). */
    fractionWithinTarget: number | undefined;
    /** Share at or below the p50 target (also a bucket bound). */
    fractionWithinP50Target: number | undefined;
    count: number;
    bucketsSeconds: number[];
    /** Observations per bucket (not cumulative), for the report's chart. */
    perBucket: { le: number; count: number }[];
  };
  postgresLowerBound: { p50Ms: number; p99Ms: number; maxMs: number; events: number; stalledEvents: number; stalledMs: number };
  /** The disk's own flush latency and writeback bursts over the window: the floor under the figures above. */
  disk: DiskProbeResult;
  /** Kafka timestamp to the record reaching the consumer (`hunt_ingest_fetch_delay_seconds`): producer, broker, fetch. */
  fetchDelay: { p50: Quantile | undefined; p99: Quantile | undefined };
  /** Micro-batches committed in the window: how the adaptive sizing behaved. */
  batches: { count: number; meanRecords: number; meanTransactionMs: number; transactionP99Ms: Quantile | undefined };
  consumerPeakRssMb: number;
  /** CPU over the steady window: whether the consumer had the cores it needed. */
  cpu: CpuSplit;
  /** CPU per event over the window: rate × this = the share of a core each side needs. */
  cpuMicrosPerEvent: Record<string, number>;
  warnings: string[];
}

export async function measureFreshness(kafka: Kafka, options: FreshnessOptions): Promise<FreshnessResult> {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2 });
  const child = await IngestChild.start({
    databaseUrl: options.databaseUrl,
    topic: options.topic,
    groupId: options.groupId,
    logFile: path.join(options.rawDir, 'freshness.log'),
    env: options.ingestEnv,
  });
  const rss = new RssSampler(child.pid);
  const generator = new TrafficGenerator({
    hunts: options.hunts,
    playersPerHunt: options.playersPerHunt,
    duplicateFraction: options.duplicateFraction,
    invalidFraction: options.invalidFraction,
    random: seededRandom(options.seed),
  });
  let disk: DiskProbe | undefined;
  try {
    await child.waitReady();
    // Warm-up: group joined, statements prepared, JIT warm; then wait until caught up.
    await produceTraffic(kafka, generator, { topic: options.topic, rate: options.rate, durationMs: options.warmupSeconds * 1000 });
    await waitCaughtUp(kafka, pool, options);
    const beforeText = await child.metricsText();
    const steadyFrom = new Date();
    const cpuFrom = snapshotCpu();
    disk = await DiskProbe.start(options.diskProbeDir);
    const started = performance.now();
    const sent = await produceTraffic(kafka, generator, { topic: options.topic, rate: options.rate, durationMs: options.seconds * 1000 });
    const producedSeconds = (performance.now() - started) / 1000;
    await waitCaughtUp(kafka, pool, options);
    const diskResult = await disk.stop();
    const afterText = await child.metricsText();
    const cpu = cpuBetween(cpuFrom, snapshotCpu(), options.cpuGroups([child.pid]), options.machineCores);
    const delta = (name: string): Histogram => histogramDelta(parseHistogram(afterText, name), parseHistogram(beforeText, name));
    const window = delta('hunt_ingest_freshness_seconds');
    const fetchDelay = delta('hunt_ingest_fetch_delay_seconds');
    const batchRecords = delta('hunt_ingest_batch_records');
    const transactions = delta('hunt_ingest_transaction_seconds');
    const { rows } = await pool.query<{ p50: number; p99: number; max: number; n: number; stalled: number }>(
      `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) * 1000 AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY d) * 1000 AS p99,
              max(d) * 1000 AS max, count(*)::int AS n, count(*) FILTER (WHERE d * 1000 > $2)::int AS stalled
         FROM (SELECT extract(epoch FROM ingested_at - occurred_at)::float8 AS d FROM events WHERE occurred_at >= $1) AS t`,
      [steadyFrom, STALLED_EVENT_MS],
    );
    const lower = rows[0];
    return {
      sent,
      achievedRate: Math.round(sent / producedSeconds),
      histogram: {
        p50: scaleToMs(histogramQuantile(window, 0.5)),
        p99: scaleToMs(histogramQuantile(window, 0.99)),
        fractionWithinTarget: fractionAtOrBelow(window, options.targetMs / 1000),
        fractionWithinP50Target: fractionAtOrBelow(window, options.p50TargetMs / 1000),
        count: window.count,
        bucketsSeconds: window.buckets.map((b) => b.le).filter(Number.isFinite),
        perBucket: window.buckets.map((b, i) => ({ le: b.le, count: b.count - (window.buckets[i - 1]?.count ?? 0) })),
      },
      postgresLowerBound: {
        p50Ms: round(lower?.p50 ?? NaN, 1),
        p99Ms: round(lower?.p99 ?? NaN, 1),
        maxMs: round(lower?.max ?? NaN, 1),
        events: lower?.n ?? 0,
        stalledEvents: lower?.stalled ?? 0,
        stalledMs: STALLED_EVENT_MS,
      },
      disk: diskResult,
      fetchDelay: { p50: scaleToMs(histogramQuantile(fetchDelay, 0.5)), p99: scaleToMs(histogramQuantile(fetchDelay, 0.99)) },
      batches: {
        count: batchRecords.count,
        meanRecords: batchRecords.count ? Math.round(batchRecords.sum / batchRecords.count) : 0,
        meanTransactionMs: transactions.count ? round((transactions.sum / transactions.count) * 1000, 1) : 0,
        transactionP99Ms: scaleToMs(histogramQuantile(transactions, 0.99)),
      },
      consumerPeakRssMb: round(rss.stop().sampledPeakMb, 1),
      cpu,
      cpuMicrosPerEvent: Object.fromEntries(Object.entries(cpu.cores).map(([g, cores]) => [g, round((cores * cpu.seconds * 1e6) / Math.max(1, sent), 1)])),
      warnings: child.warnings,
    };
  } finally {
    await disk?.stop();
    rss.stop();
    await child.stop();
    await pool.end();
  }
}

function scaleToMs(q: Quantile | undefined): Quantile | undefined {
  return q && { value: round(q.value * 1000, 1), lower: q.lower * 1000, upper: q.upper * 1000 };
}

async function waitCaughtUp(kafka: Kafka, pool: pg.Pool, options: Pick<FreshnessOptions, 'topic' | 'groupId'>): Promise<void> {
  const { total } = await topicEndOffsets(kafka, options.topic);
  const deadline = performance.now() + 120_000;
  while (performance.now() < deadline) {
    const { rows } = await pool.query<{ sum: string | null }>(
      'SELECT sum(next_offset)::text AS sum FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
      [options.groupId, options.topic],
    );
    if (Number(rows[0]?.sum ?? 0) >= total) return;
    await sleep(50);
  }
  throw new Error(`freshness: the consumer did not catch up with ${total} records within 120 s`);
}
