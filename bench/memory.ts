/**
 * `npm run bench -- memory [KEY=VALUE ...]`: what the consumer's memory is made of while it
 * drains a 1,000,000-record backlog: every second, RSS, V8 heap total and used, external
 * memory (Buffers), and anonymous memory from /proc/<pid>/smaps_rollup. The arguments are
 * environment for the ingest child, to compare settings. Prints only; for experiments.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { createKafka } from '../src/pipeline/kafka-client';
import { createLogger } from '../src/log';
import { IngestChild } from './lib/ingest-child';
import { sampleValue } from './lib/prom';
import { BenchResources } from './lib/resources';
import { preloadBacklog } from './preload';

export async function runMemoryBench(env: Record<string, string>, seconds: number): Promise<void> {
  const config = loadConfig();
  const kafka = createKafka(config, createLogger({ logLevel: 'warn' }, 'bench'), 'hunt-bench');
  const resources = new BenchResources(config.databaseUrl, kafka);
  try {
    const topic = await resources.createTopic('memory', 4);
    await preloadBacklog(kafka, { topic, events: 1_000_000, hunts: 100, playersPerHunt: 500, duplicateFraction: 0.01, invalidFraction: 0.001, seed: 42 });
    const child = await IngestChild.start({
      databaseUrl: await resources.createDatabase('memory'),
      topic,
      groupId: resources.groupId('memory'),
      logFile: path.join(os.tmpdir(), `hunt-bench-memory-${resources.runId}.log`),
      env,
    });
    await child.waitReady();
    for (let s = 1; s <= seconds; s++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const text = await child.metricsText();
      const anon = Number(/Anonymous:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) / 1024;
      const mb = (name: string) => (sampleValue(text, name) / 2 ** 20).toFixed(0);
      console.log(
        `${s}s rss ${mb('process_resident_memory_bytes')} MB, heap ${mb('nodejs_heap_size_total_bytes')} (used ${mb('nodejs_heap_size_used_bytes')}), ` +
          `external ${mb('nodejs_external_memory_bytes')}, anonymous ${anon.toFixed(0)}; read ${sampleValue(text, 'hunt_ingest_records_read_total')}`,
      );
    }
    await child.stop();
  } finally {
    await resources.dispose();
  }
}
