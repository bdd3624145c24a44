/**
 * Watches a running `hunt ingest` from outside while a test runs: every few hundred ms, what
 * /readyz answers, and each partition's high watermark against its offset in Postgres. A
 * partition is stalled (seen from outside) when it has records waiting and its Postgres
 * offset has not moved for longer than the stall limit and the time `hunt ingest` may take to
 * see it (`graceMs`, default: its partition monitor's interval, a third of the limit up to
 * 5 s, and one sample); readiness must not be 200 then. The monitor's clock starts at its
 * own tick after a commit, so without the grace a stall that ingest reports in time was
 * counted against it.
 */
import type pg from 'pg';
import { testKafka } from './ingest';

export interface ReadinessSample {
  at: number;
  status: number | 'unreachable';
  /** Partitions stalled at this moment, by the definition above. */
  stalled: number[];
}

export interface ReadinessWatch {
  samples: ReadinessSample[];
  stop(): Promise<ReadinessSample[]>;
}

export function watchReadiness(options: { apiUrl: string; pool: pg.Pool; groupId: string; topic: string; stallLimitMs: number; intervalMs?: number; graceMs?: number }): ReadinessWatch {
  const intervalMs = options.intervalMs ?? 250;
  const graceMs = options.graceMs ?? Math.min(5000, Math.max(250, Math.floor(options.stallLimitMs / 3))) + intervalMs;
  const admin = testKafka().admin();
  const samples: ReadinessSample[] = [];
  const lastMove = new Map<number, { offset: number; at: number }>();
  let stopped = false;
  const loop = (async () => {
    await admin.connect();
    try {
      while (!stopped) {
        const at = Date.now();
        const status = await fetch(`${options.apiUrl}/readyz`).then(
          (r) => r.status,
          () => 'unreachable' as const,
        );
        const marks = await admin.fetchTopicOffsets(options.topic);
        const { rows } = await options.pool.query<{ partition: number; next_offset: number }>(
          'SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
          [options.groupId, options.topic],
        );
        const stored = new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
        const stalled: number[] = [];
        for (const mark of marks) {
          const offset = stored.get(mark.partition) ?? Number(mark.low);
          const seen = lastMove.get(mark.partition);
          if (!seen || seen.offset !== offset) lastMove.set(mark.partition, { offset, at });
          const waiting = Number(mark.high) > offset;
          if (waiting && at - (lastMove.get(mark.partition)?.at ?? at) > options.stallLimitMs + graceMs) stalled.push(mark.partition);
        }
        samples.push({ at, status, stalled });
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    } finally {
      await admin.disconnect();
    }
  })();
  return {
    samples,
    async stop() {
      stopped = true;
      await loop;
      return samples;
    },
  };
}
