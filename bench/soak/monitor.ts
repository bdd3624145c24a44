/**
 * The soak's timeline: every few seconds, events applied per second (from the hunts'
 * counters in Postgres), the group's lag (the broker's high watermarks minus the offsets in
 * Postgres), freshness p99 over the interval (both ingest processes' histograms merged), the
 * resident memory of each process, and what each /readyz answers. A sample that cannot be
 * taken (Postgres stopped, say) is kept as a gap.
 */
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import { histogramDelta, histogramQuantile, parseHistogram, type Histogram } from '../lib/prom';
import type { SoakProcess } from './processes';

export interface SoakSample {
  at: number;
  eventsPerSecond: number;
  lag: number;
  freshnessP99Ms: number;
  rssMb: Record<string, number>;
  ready: Record<string, number | 'down'>;
}

export interface IngestEndpoint {
  name: string;
  apiUrl: string;
  process: SoakProcess;
}

export function startMonitor(deps: { pool: pg.Pool; admin: Admin; topic: string; groupId: string; ingests: IngestEndpoint[]; processes: SoakProcess[]; intervalMs: number }) {
  const samples: SoakSample[] = [];
  const lastHistogram = new Map<string, Histogram>();
  let lastApplied: { at: number; count: number } | undefined;
  let stopped = false;

  async function freshnessP99(): Promise<number> {
    let merged: Histogram | undefined;
    for (const ingest of deps.ingests) {
      const text = await fetch(`${ingest.apiUrl}/metrics`).then((r) => r.text()).catch(() => undefined);
      if (!text) continue;
      const now = parseHistogram(text, 'hunt_ingest_freshness_seconds');
      const before = lastHistogram.get(ingest.name);
      lastHistogram.set(ingest.name, now);
      // A restarted process starts its counters again from zero.
      const delta = before && before.count <= now.count ? histogramDelta(now, before) : now;
      merged = merged ? { buckets: merged.buckets.map((b, i) => ({ le: b.le, count: b.count + (delta.buckets[i]?.count ?? 0) })), sum: merged.sum + delta.sum, count: merged.count + delta.count } : delta;
    }
    const q = merged ? histogramQuantile(merged, 0.99) : undefined;
    return q ? q.value * 1000 : NaN;
  }

  async function sample(): Promise<void> {
    const at = Date.now();
    const applied = await deps.pool.query<{ n: number | null }>('SELECT sum(events_applied)::bigint AS n FROM hunts').then((r) => Number(r.rows[0]?.n ?? 0), () => undefined);
    let eventsPerSecond = NaN;
    if (applied !== undefined) {
      if (lastApplied) eventsPerSecond = Math.max(0, (applied - lastApplied.count) / ((at - lastApplied.at) / 1000));
      lastApplied = { at, count: applied };
    }
    const lag = await Promise.all([
      deps.admin.fetchTopicOffsets(deps.topic),
      deps.pool.query<{ n: number | null }>('SELECT sum(next_offset)::bigint AS n FROM consumer_offsets WHERE group_id = $1', [deps.groupId]),
    ]).then(([marks, stored]) => marks.reduce((n, m) => n + Number(m.high), 0) - Number(stored.rows[0]?.n ?? 0), () => NaN);
    const rssMb = Object.fromEntries(deps.processes.map((p) => [p.name, (p.rss() ?? NaN) / 1024 / 1024]));
    const ready = Object.fromEntries(
      await Promise.all(deps.ingests.map(async (i) => [i.name, await fetch(`${i.apiUrl}/readyz`).then((r) => r.status, () => 'down' as const)] as const)),
    );
    samples.push({ at, eventsPerSecond, lag, freshnessP99Ms: await freshnessP99(), rssMb, ready });
  }

  const loop = (async () => {
    while (!stopped) {
      await sample().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, deps.intervalMs));
    }
  })();
  return {
    samples,
    async stop(): Promise<SoakSample[]> {
      stopped = true;
      await loop;
      return samples;
    },
  };
}
