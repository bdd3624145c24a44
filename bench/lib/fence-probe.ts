/**
 * A stand-in for the hot path beside a batch job: a transaction that takes the fence rows of
 * one of the job's hunts (in turn), as the hot path does before it stores a hunt's events,
 * every `everyMs`, and records how long each took. The longest is how long ingest of that
 * hunt stopped.
 */
import type pg from 'pg';
import { lockHuntFences } from '../../src/store/hot-path/apply-events';
import { round } from './procfs';

export interface FenceWaits {
  probes: number;
  maxMs: number;
  p99Ms: number;
}

export function startFenceProbe(pool: pg.Pool, huntIds: readonly string[], everyMs = 20): { stop(): Promise<FenceWaits> } {
  let stopped = false;
  const waits: number[] = [];
  const probing = (async () => {
    const client = await pool.connect();
    try {
      for (let i = 0; !stopped; i++) {
        const started = performance.now();
        await client.query('BEGIN');
        await lockHuntFences(client, [huntIds[i % huntIds.length] as string]);
        await client.query('COMMIT');
        waits.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    } finally {
      client.release();
    }
  })();
  return {
    async stop() {
      stopped = true;
      await probing;
      const sorted = [...waits].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
      return { probes: sorted.length, maxMs: round(at(1), 1), p99Ms: round(at(0.99), 1) };
    },
  };
}
