/**
 * `npm run bench -- stream`: live leaderboard pushes under load. A real `hunt ingest` with
 * its read API takes 5,000 events/s over 100 hunts; the bench first measures it with no
 * stream open, then with 1,000 Server-Sent Events streams (10 per hunt). Reported: the
 * produce-to-push latency (a message's arrival minus the occurredAt of the newest event it
 * shows, which the generator stamps when it sends), measured by clients in a process of
 * their own (bench/lib/stream-clients.ts), and what each stream costs the ingest process in
 * memory and CPU (the difference between the two windows, per stream).
 */
import os from 'node:os';
import path from 'node:path';
import { loadConfig, projectRoot } from '../src/config';
import { produceTraffic } from '../src/demo/produce';
import { seededRandom, TrafficGenerator } from '../src/demo/traffic';
import { createKafka } from '../src/pipeline/kafka-client';
import { createLogger } from '../src/log';
import { IngestChild } from './lib/ingest-child';
import { startStreamClients, type StreamClients } from './lib/stream-clients';
import { histogramDelta, histogramQuantile, parseHistogram } from './lib/prom';
import { cpuBetween, memoryOf, snapshotCpu } from './lib/procfs';
import { BenchResources } from './lib/resources';
import { resultFilesOf, writeResultFiles } from './lib/results-files';
import { step } from './lib/step';

export interface StreamBenchOptions {
  rate: number;
  hunts: number;
  streams: number;
  seconds: number;
}

interface Window {
  seconds: number;
  rssMb: number;
  consumerCores: number;
  /** Produce to commit in the same window, from the ingest's own histogram: the part of the push latency before the change feed. */
  commitFreshnessMs: { p50: number; p99: number };
}

export async function runStreamBench(options: StreamBenchOptions, command: string): Promise<void> {
  const config = loadConfig();
  const startedAt = new Date().toISOString();
  const kafka = createKafka(config, createLogger({ logLevel: 'warn' }, 'bench'), 'hunt-bench');
  const resources = new BenchResources(config.databaseUrl, kafka);
  let clients: StreamClients | undefined;
  try {
    const topic = await resources.createTopic('stream', 4);
    const child = await IngestChild.start({
      databaseUrl: await resources.createDatabase('stream'),
      topic,
      groupId: resources.groupId('stream'),
      logFile: path.join(os.tmpdir(), `hunt-bench-stream-${resources.runId}.log`),
      env: { API_MAX_CONNECTIONS: String(options.streams + 1000), API_MAX_STREAMS: String(options.streams) },
    });
    await child.waitReady();
    const stop = new AbortController();
    const generator = new TrafficGenerator({ hunts: options.hunts, playersPerHunt: 200, random: seededRandom(5) });
    const traffic = produceTraffic(kafka, generator, { topic, rate: options.rate, signal: stop.signal });
    await new Promise((resolve) => setTimeout(resolve, 5000)); // warm-up: every hunt exists, the consumer is steady

    step(`${options.rate} events/s, no stream open: ${options.seconds} s`);
    const quiet = await measureWindow(child, options.seconds);

    step(`opening ${options.streams} streams (${options.streams / options.hunts} per hunt) from a client process`);
    clients = startStreamClients({ url: child.apiUrl, hunts: options.hunts, streams: options.streams, warmupMs: 2000, measureMs: options.seconds * 1000 });
    await clients.measuring;
    step(`${options.rate} events/s, ${options.streams} streams: ${options.seconds} s`);
    const busy = await measureWindow(child, options.seconds);
    const clientStats = await clients.stats;
    stop.abort();
    await traffic;
    await child.stop();

    const perStream = {
      memoryKb: Math.round(((busy.rssMb - quiet.rssMb) * 1024) / options.streams),
      cpuMicrocoresPerStream: Math.round(((busy.consumerCores - quiet.consumerCores) * 1e6) / options.streams),
    };
    const result = { benchmark: 'stream', command, startedAt, options, quiet, busy, clients: clientStats, perStream };
    const lat = clientStats.latencyMs;
    const markdown = [
      `# Live leaderboard streams, ${startedAt.slice(0, 16).replace('T', ' ')} UTC`,
      '',
      `\`${command}\`: a \`hunt ingest\` taking ${options.rate} events/s over ${options.hunts} hunts, measured ${options.seconds} s with no stream, then ${options.seconds} s with ${options.streams} streams (${options.streams / options.hunts} per hunt, limit 10).`,
      '',
      '| figure | value |',
      '| --- | --- |',
      `| produce-to-push latency (arrival minus the newest shown event's occurredAt) | p50 ${lat.p50} ms, p99 ${lat.p99} ms, max ${lat.max} ms over ${clientStats.messages} messages |`,
      `| time between a stream's messages | p10 ${clientStats.gapMs.p10} ms, p50 ${clientStats.gapMs.p50} ms |`,
      `| produce to commit in the same window (\`hunt_ingest_freshness_seconds\`) | p50 ${busy.commitFreshnessMs.p50} ms, p99 ${busy.commitFreshnessMs.p99} ms (without streams: p50 ${quiet.commitFreshnessMs.p50} ms, p99 ${quiet.commitFreshnessMs.p99} ms) |`,
      `| ingest process RSS | ${quiet.rssMb} MB without streams, ${busy.rssMb} MB with ${options.streams}: ${perStream.memoryKb} KB per stream |`,
      `| ingest process CPU | ${quiet.consumerCores} cores without streams, ${busy.consumerCores} with: ${perStream.cpuMicrocoresPerStream} millionths of a core per stream |`,
      '',
      'Each hunt is read once per change window (at most every 100 ms) for all its streams; a message goes to every stream of the hunt.',
      'Streams of one hunt share its read; windows follow each other 100 ms after the previous delivery, so at this rate (every hunt changes within every window) each stream gets a message about every 100 ms, the contract\'s limit. The latency is then the age of the hunt\'s newest event when its window reads (a hunt gets an event every 20 ms here, committed p50 ~9 ms after it is sent), plus the read and the delivery.',
      '',
    ].join('\n');
    const files = resultFilesOf(path.join(projectRoot, 'bench/results'), 'stream', startedAt);
    writeResultFiles(files, result, markdown);
    step(`p50 ${lat.p50} ms, p99 ${lat.p99} ms; ${perStream.memoryKb} KB and ${perStream.cpuMicrocoresPerStream} µcores per stream; wrote ${path.relative(projectRoot, files.markdown)}`);
  } finally {
    clients?.kill();
    await resources.dispose();
  }
}

async function measureWindow(child: IngestChild, seconds: number): Promise<Window> {
  const pid = child.pid;
  const before = await child.metricsText();
  const from = snapshotCpu();
  let rss = 0;
  const sampler = setInterval(() => (rss = Math.max(rss, memoryOf(pid)?.rssMb ?? 0)), 200);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  clearInterval(sampler);
  const cpu = cpuBetween(from, snapshotCpu(), { consumer: (p) => p.pid === pid }, os.availableParallelism());
  const name = 'hunt_ingest_freshness_seconds';
  const freshness = histogramDelta(parseHistogram(await child.metricsText(), name), parseHistogram(before, name));
  const ms = (q: number) => Math.round((histogramQuantile(freshness, q)?.value ?? NaN) * 10_000) / 10;
  return { seconds, rssMb: Math.round(rss), consumerCores: cpu.cores.consumer ?? 0, commitFreshnessMs: { p50: ms(0.5), p99: ms(0.99) } };
}
