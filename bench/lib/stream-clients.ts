/**
 * Live leaderboard clients in a process of their own, as game clients are on other
 * machines: the benchmark's producer shares its event loop with nothing, and the clients'
 * parsing does not delay the producer's timestamps or the other way round.
 *
 * Run as a child (stream-clients.ts <url> <hunts> <streams> <warmupMs> <measureMs>): opens
 * the streams, prints `{"phase":"open"}` when each has its first message, waits warmupMs,
 * prints `{"phase":"measuring"}`, records measureMs of messages, then prints the statistics
 * as one JSON line and exits.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connectSse, type SseConnection } from '../../test/helpers/sse';

export interface StreamClientStats {
  /** Arrival minus the occurredAt of the newest event the message shows (asOf), ms. */
  latencyMs: { p50: number; p99: number; max: number };
  /** Time between consecutive messages of one stream, ms. */
  gapMs: { p10: number; p50: number };
  messages: number;
  streams: number;
}

export interface StreamClients {
  pid: number | undefined;
  /** Resolves when every stream had its first message and the warm-up is over. */
  measuring: Promise<void>;
  /** Resolves with the statistics of the measured window. */
  stats: Promise<StreamClientStats>;
  kill(): void;
}

export function startStreamClients(options: { url: string; hunts: number; streams: number; warmupMs: number; measureMs: number }): StreamClients {
  const args = [options.url, options.hunts, options.streams, options.warmupMs, options.measureMs].map(String);
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  let onMeasuring: () => void = () => undefined;
  let onStats: (stats: StreamClientStats) => void = () => undefined;
  let onFailure: (err: Error) => void = () => undefined;
  const measuring = new Promise<void>((resolve, reject) => {
    onMeasuring = resolve;
    child.once('exit', (code) => reject(new Error(`the stream clients exited (${code}) before measuring`)));
  });
  const stats = new Promise<StreamClientStats>((resolve, reject) => {
    onStats = resolve;
    onFailure = reject;
  });
  lines.on('line', (line) => {
    const message = JSON.parse(line) as { phase?: string; stats?: StreamClientStats };
    if (message.phase === 'measuring') onMeasuring();
    if (message.stats) onStats(message.stats);
  });
  child.once('exit', (code) => onFailure(new Error(`the stream clients exited (${code}) without statistics`)));
  measuring.catch(() => undefined);
  return { pid: child.pid, measuring, stats, kill: () => child.kill('SIGKILL') };
}

async function runClients(url: string, hunts: number, count: number, warmupMs: number, measureMs: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const connections: SseConnection[] = [];
  for (let i = 0; i < count; i++) connections.push(connectSse(`${url}/hunts/hunt-${i % hunts}/leaderboard/stream?limit=10`, agent));
  await Promise.all(connections.map((c) => c.next(0, 60_000)));
  console.log(JSON.stringify({ phase: 'open' }));
  await new Promise((resolve) => setTimeout(resolve, warmupMs));
  const from = connections.map((c) => c.events.length);
  console.log(JSON.stringify({ phase: 'measuring' }));
  await new Promise((resolve) => setTimeout(resolve, measureMs));
  const to = connections.map((c) => c.events.length);
  for (const c of connections) c.close();
  agent.destroy();

  const latencies: number[] = [];
  const gaps: number[] = [];
  connections.forEach((c, i) => {
    const events = c.events.slice(from[i], to[i]);
    events.forEach((e, j) => {
      const asOf = (JSON.parse(e.data) as { asOf: string | null }).asOf;
      if (asOf) latencies.push(e.at - Date.parse(asOf));
      const previous = events[j - 1];
      if (previous) gaps.push(e.at - previous.at);
    });
  });
  const q = (values: number[], p: number) => values[Math.min(values.length - 1, Math.floor(p * values.length))] ?? NaN;
  latencies.sort((a, b) => a - b);
  gaps.sort((a, b) => a - b);
  const stats: StreamClientStats = {
    latencyMs: { p50: q(latencies, 0.5), p99: q(latencies, 0.99), max: latencies.at(-1) ?? NaN },
    gapMs: { p10: q(gaps, 0.1), p50: q(gaps, 0.5) },
    messages: latencies.length,
    streams: count,
  };
  console.log(JSON.stringify({ stats }));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [url, hunts, streams, warmupMs, measureMs] = process.argv.slice(2);
  if (!url || !hunts || !streams || !warmupMs || !measureMs) throw new Error('usage: stream-clients.ts <url> <hunts> <streams> <warmupMs> <measureMs>');
  await runClients(url, Number(hunts), Number(streams), Number(warmupMs), Number(measureMs));
  process.exit(0);
}
