import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { round } from './procfs';

/**
 * Game clients reading a leaderboard: `readers` concurrent loops, each sending the next
 * request as soon as the last answered (after `thinkMs`, 0 by default: the worst case).
 * Every latency is kept, so quantiles are exact rather than bucketed.
 */

export interface ReaderOptions {
  /** The full leaderboard URL, e.g. http://127.0.0.1:8080/hunts/hunt-0/leaderboard?limit=10 */
  url: string;
  readers: number;
  thinkMs: number;
}

export interface ReaderStats {
  readers: number;
  seconds: number;
  /** 200 answers per second over the whole window. */
  readsPerSecond: number;
  ok: number;
  /** Answers other than 200, by status, and requests that got no answer. */
  statuses: Record<string, number>;
  failures: number;
  /** The first few distinct failure messages, to tell refused from reset from timed out. */
  failureKinds: string[];
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Reads per second, one figure per second of the window. */
  timeline: number[];
}

export interface RunningReaders {
  /** The process the readers run in, when it is not this one. */
  pid?: number;
  stop(): Promise<ReaderStats>;
}

export function startLeaderboardReaders(options: ReaderOptions): RunningReaders {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const perSecond: number[] = [];
  let failures = 0;
  const failureKinds = new Set<string>();
  let stopping = false;
  const started = performance.now();

  const loop = async () => {
    while (!stopping) {
      const sent = performance.now();
      try {
        const response = await fetch(options.url);
        await response.arrayBuffer();
        const done = performance.now();
        if (response.status === 200) {
          latencies.push(done - sent);
          const second = Math.floor((done - started) / 1000);
          perSecond[second] = (perSecond[second] ?? 0) + 1;
        } else {
          statuses[response.status] = (statuses[response.status] ?? 0) + 1;
        }
      } catch (err) {
        failures++;
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        if (failureKinds.size < 5) failureKinds.add(`${(err as Error).message}${cause ? `: ${cause.code ?? ''} ${cause.message ?? ''}` : ''}`);
        // A refused connection answers at once; do not spin.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (options.thinkMs > 0) await new Promise((resolve) => setTimeout(resolve, options.thinkMs));
    }
  };
  const loops = Array.from({ length: options.readers }, () => loop());

  return {
    async stop() {
      stopping = true;
      await Promise.all(loops);
      const seconds = (performance.now() - started) / 1000;
      const sorted = latencies.sort((a, b) => a - b);
      const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN, 1);
      return {
        readers: options.readers,
        seconds: round(seconds, 2),
        readsPerSecond: Math.round(latencies.length / seconds),
        ok: latencies.length,
        statuses,
        failures,
        failureKinds: [...failureKinds],
        latencyMs: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(sorted.at(-1) ?? NaN, 1), mean: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length), 1) },
        timeline: Array.from(perSecond, (n) => n ?? 0),
      };
    },
  };
}

/**
 * The same readers in a child process at `nice` (0-19): they stand for clients on other
 * machines, so on a shared one their CPU should come after the server's. Linux shares CPU
 * fairly between sessions first (autogroups) and applies nice only inside one, so the child
 * gets a session of its own (detached) and that session's nice.
 */
export function startReaderProcess(options: ReaderOptions & { nice: number }): RunningReaders {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(path.dirname(fileURLToPath(import.meta.url)), 'reader-child.ts'), options.url, String(options.readers), String(options.thinkMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  if (child.pid !== undefined && options.nice > 0) {
    os.setPriority(child.pid, options.nice);
    try {
      fs.writeFileSync(`/proc/${child.pid}/autogroup`, String(options.nice));
    } catch {
      // No autogroups (or not allowed): nice inside the session is what there is.
    }
  }
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      process.removeListener('exit', killOnExit);
      const line = output.trim().split('\n').at(-1);
      if (!line) throw new Error('the reader process printed no statistics');
      return JSON.parse(line) as ReaderStats;
    },
  };
}
