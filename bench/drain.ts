/**
 * Our path: the real `hunt ingest` drains the preloaded backlog into a fresh database. Done
 * means Postgres's consumer_offsets for the group sum to the topic's end offsets, which is
 * the exactly-once path's own definition of "committed".
 *
 * Start-up (spawn, tsx, connecting, joining the group) is timed apart from the drain: the
 * headline rate runs from the first committed micro-batch to the last one, counting only the
 * records committed after the first.
 */
import path from 'node:path';
import pg from 'pg';
import { IngestChild, sleep } from './lib/ingest-child';
import { histogramQuantile, mergeHistograms, parseHistogram, sampleValue } from './lib/prom';
import { cpuBetween, RssSampler, round, snapshotCpu, type CpuGroups, type CpuSplit } from './lib/procfs';

export interface DrainOptions {
  databaseUrl: string;
  topic: string;
  groupId: string;
  /** Records in the topic (sum of end offsets; the topic starts at 0). */
  records: number;
  rawDir: string;
  label: string;
  /** Profile mode: write a CPU profile, stop after this long into the drain. */
  cpuProfileDir?: string;
  stopAfterMs?: number;
  /** Extra environment for the child (INGEST_* knobs), for experiments. */
  env?: Record<string, string>;
  cpuGroups: (childPids: number[]) => CpuGroups;
  /** Ingest processes in the consumer group (scale-out: they share the partitions). */
  consumers?: number;
  machineCores: number;
  timeoutMs?: number;
  /**
   * Load to put on the first child's read API while it drains: started once every child's
   * /readyz answers 200, stopped when the drain is done and before the children are.
   */
  apiLoad?: { start(apiUrl: string): void; stop(): Promise<void> };
}

export interface DrainResult {
  records: number;
  consumers: number;
  startupMs: { ready: number; firstCommit: number };
  drainSeconds: number;
  /** Records committed after the first micro-batch, per second of drain. */
  eventsPerSecond: number;
  /** All records over spawn-to-done, start-up included. */
  eventsPerSecondWithStartup: number;
  rss: { sampledPeakMb: number; kernelPeakMb: number | undefined; samples: number };
  /** Peaks of the V8 heap as the child's /metrics reports it (scraped every 2 s): live data versus RSS. */
  heap: { usedPeakMb: number; totalPeakMb: number; externalPeakMb: number };
  cpu: CpuSplit;
  /**
   * CPU time per drained record, from the CPU split: robust to other load on the machine in a
   * way the wall-clock rate is not, and it says what a serial pipeline can reach (1e6 / sum).
   */
  cpuMicrosPerEvent: Record<string, number>;
  batches: { count: number; meanRecords: number; meanTransactionMs: number; commitRetries: number };
  /** Micro-batch transaction time quantiles, interpolated within the histogram's buckets. */
  transactionMs: { p50: number | undefined; p99: number | undefined };
  /** Records committed per second, one figure per second of drain. */
  timeline: number[];
  /** The drain's bounds on the monotonic clock in µs, the clock of V8 CPU profiles. */
  monotonicUs: { firstCommit: number; end: number };
  stored: { events: number; quarantined: number };
  /** Per ingest process: records it committed once every process owned partitions, and the partitions it owned at the end. */
  perConsumer: { records: number; partitions: number[] }[];
  /** Scale-out: each partition's committed offset when every process first owned partitions. */
  committedAtShare?: Record<number, number>;
  exit: { code: number | null; escalated: string | undefined };
  warnings: string[];
  completed: boolean;
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

export async function drainWithIngest(options: DrainOptions): Promise<DrainResult> {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2 });
  const consumers = options.consumers ?? 1;
  const children = await Promise.all(
    Array.from({ length: consumers }, (_, i) =>
      IngestChild.start({
        databaseUrl: options.databaseUrl,
        topic: options.topic,
        groupId: options.groupId,
        logFile: path.join(options.rawDir, consumers === 1 ? `${options.label}.log` : `${options.label}-${i}.log`),
        cpuProfileDir: options.cpuProfileDir,
        env: options.env,
      }),
    ),
  );
  const spawnedAt = Math.min(...children.map((c) => c.startedAt));
  const samplers = children.map((c) => new RssSampler(c.pid));
  const heap = { usedPeakMb: 0, totalPeakMb: 0, externalPeakMb: 0 };
  const heapTimer = setInterval(() => {
    for (const child of children) {
      child.metricsText().then((text) => {
        const mb = (name: string) => sampleValue(text, name) / 2 ** 20;
        heap.usedPeakMb = Math.max(heap.usedPeakMb, round(mb('nodejs_heap_size_used_bytes'), 1));
        heap.totalPeakMb = Math.max(heap.totalPeakMb, round(mb('nodejs_heap_size_total_bytes'), 1));
        heap.externalPeakMb = Math.max(heap.externalPeakMb, round(mb('nodejs_external_memory_bytes'), 1));
      }, () => undefined);
    }
  }, 2000);
  let readyMs = NaN;
  void Promise.all(children.map((c) => c.waitReady())).then(
    (ms) => {
      readyMs = Math.max(...ms);
      if (children[0]) options.apiLoad?.start(children[0].apiUrl);
    },
    () => undefined,
  );

  const committed = async () => {
    const { rows } = await pool.query<{ sum: string | null }>(
      'SELECT sum(next_offset)::text AS sum FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
      [options.groupId, options.topic],
    );
    return Number(rows[0]?.sum ?? 0);
  };

  // Scale-out: each member's share is counted from the moment every member owns partitions
  // (the first to join takes them all until the group rebalances).
  let sharedFrom: number[] | undefined;
  const checkShared = async () => {
    const texts = await Promise.all(children.map((c) => c.metricsText().catch(() => '')));
    if (!texts.every((t) => ownedPartitions(t).length > 0)) return;
    sharedFrom = texts.map((t) => parseHistogram(t, 'hunt_ingest_batch_records').sum);
    const { rows } = await pool.query<{ partition: number; next_offset: number }>(
      'SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
      [options.groupId, options.topic],
    );
    committedAtShare = new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
  };
  let committedAtShare: Map<number, number> | undefined;
  const deadline = performance.now() + (options.timeoutMs ?? 15 * 60_000);
  let first: { at: number; records: number; us: number } | undefined;
  let firstCpu = snapshotCpu();
  let last = { at: performance.now(), records: 0 };
  const timeline: number[] = [];
  let lastSecond = { at: 0, records: 0 };
  while (performance.now() < deadline) {
    // A child that died (bad flag, crash) would otherwise leave this loop waiting for the timeout.
    const dead = children.find((c) => c.hasExited);
    if (dead) {
      clearInterval(heapTimer);
      samplers.forEach((s) => s.stop());
      throw new Error(`the ingest child ended before the drain finished; see ${dead.logFile}`);
    }
    const records = await committed();
    const at = performance.now();
    if (consumers > 1 && !sharedFrom) await checkShared();
    if (!first && records > 0) {
      first = { at, records, us: monotonicUs() };
      firstCpu = snapshotCpu();
      lastSecond = { at, records };
    }
    last = { at, records };
    if (first && at - lastSecond.at >= 1000) {
      timeline.push(Math.round(((records - lastSecond.records) * 1000) / (at - lastSecond.at)));
      lastSecond = { at, records };
    }
    if (records >= options.records) break;
    if (first && options.stopAfterMs !== undefined && at - first.at >= options.stopAfterMs) break;
    await sleep(100);
  }
  const endUs = monotonicUs();
  const endCpu = snapshotCpu();
  await options.apiLoad?.stop();
  // Per process: the target is about one consumer's memory, however many run.
  const memories = samplers.map((s) => s.stop());
  const memory = memories.reduce((a, b) => (Math.max(a.sampledPeakMb, a.kernelPeakMb ?? 0) >= Math.max(b.sampledPeakMb, b.kernelPeakMb ?? 0) ? a : b));
  clearInterval(heapTimer);
  const metricsTexts = await Promise.all(children.map((c) => c.metricsText().catch(() => '')));
  const exits = await Promise.all(children.map((c) => c.stop()));
  const exit = exits.find((e) => e.code !== 0 || e.escalated) ?? exits[0] ?? { code: null, escalated: undefined };
  const stored = await pool.query<{ events: number; quarantined: number }>(
    'SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM quarantine) AS quarantined',
  );
  await pool.end();

  const startFirst = first ?? { at: last.at, records: 0 };
  const drainSeconds = (last.at - startFirst.at) / 1000;
  const cpu = cpuBetween(firstCpu, endCpu, options.cpuGroups(children.map((c) => c.pid)), options.machineCores);
  const batchSize = mergeHistograms(metricsTexts.map((t) => parseHistogram(t, 'hunt_ingest_batch_records')));
  const transaction = mergeHistograms(metricsTexts.map((t) => parseHistogram(t, 'hunt_ingest_transaction_seconds')));
  const quantileMs = (q: number) => {
    const v = histogramQuantile(transaction, q)?.value;
    return v === undefined ? undefined : round(v * 1000, 1);
  };
  return {
    records: last.records,
    consumers,
    startupMs: { ready: round(readyMs), firstCommit: round(startFirst.at - spawnedAt) },
    drainSeconds: round(drainSeconds, 2),
    eventsPerSecond: Math.round((last.records - startFirst.records) / drainSeconds),
    eventsPerSecondWithStartup: Math.round(last.records / ((last.at - spawnedAt) / 1000)),
    rss: { sampledPeakMb: round(memory.sampledPeakMb, 1), kernelPeakMb: memory.kernelPeakMb && round(memory.kernelPeakMb, 1), samples: memory.samples },
    heap,
    cpu,
    cpuMicrosPerEvent: Object.fromEntries(
      Object.entries(cpu.cores).map(([group, cores]) => [group, round((cores * cpu.seconds * 1e6) / Math.max(1, last.records - startFirst.records), 1)]),
    ),
    batches: {
      count: batchSize.count,
      meanRecords: batchSize.count ? Math.round(batchSize.sum / batchSize.count) : 0,
      meanTransactionMs: transaction.count ? round((transaction.sum / transaction.count) * 1000, 1) : 0,
      commitRetries: metricsTexts.reduce((a, t) => a + sampleValue(t, 'hunt_ingest_commit_retries_total'), 0),
    },
    transactionMs: { p50: quantileMs(0.5), p99: quantileMs(0.99) },
    timeline,
    monotonicUs: { firstCommit: first?.us ?? endUs, end: endUs },
    stored: stored.rows[0] ?? { events: 0, quarantined: 0 },
    committedAtShare: committedAtShare && Object.fromEntries(committedAtShare),
    perConsumer: metricsTexts.map((t, i) => ({
      records: parseHistogram(t, 'hunt_ingest_batch_records').sum - (sharedFrom?.[i] ?? 0),
      partitions: ownedPartitions(t),
    })),
    exit,
    warnings: children.flatMap((c) => c.warnings),
    completed: last.records >= options.records,
  };
}

/** Partitions a child reports owning (`hunt_ingest_partitions_assigned{partition="n"} 1`). */
function ownedPartitions(metrics: string): number[] {
  return [...metrics.matchAll(/^hunt_ingest_partitions_assigned\{[^}]*partition="(\d+)"[^}]*\} 1$/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
}
