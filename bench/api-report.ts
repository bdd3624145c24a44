/** The record of one `bench -- api` run, and its markdown table. */
import type { DrainResult } from './drain';
import type { ReaderStats } from './lib/leaderboard-readers';
import type { CpuSplit } from './lib/procfs';
import type { PreloadResult } from './preload';

export interface ApiPhase {
  kind: 'quiet' | 'readers';
  label: string;
  drain: DrainResult;
  reads: ReaderStats | undefined;
  /** Leaderboard requests timed inside the server: headers parsed to answer sent. */
  serverReadMs: { p50: number | undefined; p99: number | undefined; count: number } | undefined;
}

export interface ApiBenchResult {
  benchmark: 'api';
  runId: string;
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: Record<string, string | number>;
  background: CpuSplit;
  setup: Record<string, unknown>;
  preload: PreloadResult;
  phases: ApiPhase[];
  summary: {
    quietDrainEventsPerSecond: number;
    loadedDrainEventsPerSecond: number;
    drainRatio: number;
    quietEventsPerCoreSecond: number;
    loadedEventsPerCoreSecond: number;
    perCoreRatio: number;
    otherCores: { quiet: number; readers: number };
    quietTransactionP99Ms: number;
    loadedTransactionP99Ms: number;
    transactionP99Ratio: number;
    readsPerSecond: number;
    readP50Ms: number;
    readP99Ms: number;
    serverReadP99Ms: number;
    goalDrainRatio: number;
    met: boolean;
  };
  cleanup: string[];
}

const n = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '-' : v.toLocaleString('en-US'));
const cores = (split: CpuSplit) => Object.entries(split.cores).map(([group, c]) => `${group} ${c}`).join(', ');

export function renderApiMarkdown(r: ApiBenchResult, jsonName: string): string {
  const s = r.summary;
  const lines = [
    `# Read API under load: leaderboard readers while ingest drains (${r.startedAt})`,
    '',
    `\`${r.command}\`, run ${r.runId}; every figure in [${jsonName}](${jsonName}).`,
    '',
    `${r.setup.readers} concurrent readers (think time ${r.setup.thinkMs} ms; a process of their own at nice ${r.setup.readersNice}, standing for clients on other machines) read \`/hunts/${r.setup.hunt}/leaderboard?limit=${r.setup.limit}\` of a ${n(Number(r.setup.players))}-player hunt`,
    `while \`hunt ingest\` drains a ${n(Number(r.setup.records))}-record backlog (${r.setup.partitions} partitions, ${r.setup.hunts} hunts; the backlog also updates the read hunt).`,
    `The read API has its own pool of ${r.setup.apiDbPoolSize} connections with a ${r.setup.apiStatementTimeoutMs} ms statement timeout.`,
    `Phases in order: ${r.phases.map((p) => p.label).join(', ')}; figures below are means of each kind.`,
    '',
    '| figure | quiet | with readers | ratio |',
    '| --- | --- | --- | --- |',
    `| drain rate (events/s) | ${n(s.quietDrainEventsPerSecond)} | ${n(s.loadedDrainEventsPerSecond)} | **${s.drainRatio}** (goal ≥ ${s.goalDrainRatio}: ${s.met ? 'met' : '**not met**'}) |`,
    `| drain events per core-second of the ingest process and Postgres | ${n(s.quietEventsPerCoreSecond)} | ${n(s.loadedEventsPerCoreSecond)} | ${s.perCoreRatio} |`,
    `| CPU of everything else on the machine (cores, "other") | ${s.otherCores.quiet} | ${s.otherCores.readers} | |`,
    `| micro-batch transaction p99 (ms) | ${n(s.quietTransactionP99Ms)} | ${n(s.loadedTransactionP99Ms)} | ${s.transactionP99Ratio} |`,
    `| leaderboard reads/s | - | ${n(s.readsPerSecond)} | |`,
    `| read latency p50 / p99 at the readers (ms) | - | ${n(s.readP50Ms)} / ${n(s.readP99Ms)} | |`,
    `| read p99 inside the server (ms) | - | ${n(s.serverReadP99Ms)} | |`,
    '',
    '## Phases',
    '',
    '| phase | drain events/s | drain s | tx p50 / p99 ms | mean batch | reads/s | read p50 / p90 / p99 / max ms | in the server p50 / p99 ms | non-200, failures | CPU (cores) during the drain |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...r.phases.map((p) => {
      const d = p.drain;
      const reads = p.reads;
      return `| ${p.label} | ${n(d.eventsPerSecond)} | ${d.drainSeconds} | ${n(d.transactionMs.p50)} / ${n(d.transactionMs.p99)} | ${n(d.batches.meanRecords)} | ${reads ? n(reads.readsPerSecond) : '-'} | ${reads ? `${reads.latencyMs.p50} / ${reads.latencyMs.p90} / ${reads.latencyMs.p99} / ${reads.latencyMs.max}` : '-'} | ${p.serverReadMs ? `${n(p.serverReadMs.p50)} / ${n(p.serverReadMs.p99)}` : '-'} | ${reads ? `${JSON.stringify(reads.statuses)}, ${reads.failures}` : '-'} | ${cores(d.cpu)} |`;
    }),
    '',
    `Background load before the run: ${r.background.machineBusyCores} of ${r.background.machineCores} cores busy` +
      (r.background.otherTop.length ? ` (${r.background.otherTop.map((o) => `${o.comm} ${o.cores}`).join(', ')})` : '') + '.',
    `Machine: ${Object.entries(r.machine).map(([k, v]) => `${k} ${v}`).join('; ')}.`,
    '',
    'Reading the figures: transaction quantiles are interpolated within the histogram buckets of',
    '`hunt_ingest_transaction_seconds` (as Prometheus does), and so are the in-server read times',
    '(`hunt_api_request_seconds{route="leaderboard"}`: headers parsed to answer sent; time a request waits',
    'before the server reads it is not in it). Read latencies at the readers are exact, measured by the',
    'readers, which run on the same machine (their CPU is the "readers" group; "other" holds the kernel\'s',
    'loopback networking and everyone else\'s work on this shared machine).',
    '',
  ];
  if (r.cleanup.length) lines.push(`Cleanup: ${r.cleanup.join('; ')}`, '');
  return lines.join('\n');
}
