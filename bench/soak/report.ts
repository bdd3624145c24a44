/**
 * The soak's record: bench/results/soak-<time>.json (every sample and fault), a markdown
 * report with the verdicts, and four SVG timelines (throughput, lag, freshness p99, RSS)
 * with the faults marked.
 */
import fs from 'node:fs';
import path from 'node:path';
import { resultFilesOf, writeResultFiles } from '../lib/results-files';
import { lineChart, type Marker } from '../lib/svg-chart';
import type { FaultRecord } from './chaos';
import type { SoakSample } from './monitor';
import type { CountCheck, FinalCheck } from './verify';

export interface SoakResult {
  command: string;
  startedAt: string;
  minutes: number;
  rate: number;
  traffic: { sent: number; hostile: number; sendErrors: number };
  backfill: { file: string; events: number; invalidLines: number; quarantined: number };
  faults: FaultRecord[];
  samples: SoakSample[];
  counts: CountCheck;
  final: FinalCheck;
  finalReconcile: unknown;
  restarts: Record<string, number>;
  verdicts: { check: string; ok: boolean; detail: string }[];
}

export function verdictsOf(r: Omit<SoakResult, 'verdicts'>): SoakResult['verdicts'] {
  const f = r.final;
  return [
    { check: 'no event lost', ok: f.lost === 0, detail: `${f.lost} of ${f.expectedEvents} expected eventIds missing${f.lost ? ` (e.g. ${f.lostSample.join(', ')})` : ''}` },
    { check: 'nothing stored that was not sent', ok: f.unexpected === 0, detail: `${f.unexpected} unexpected eventIds` },
    { check: 'nothing counted twice (events_applied = stored events, per hunt)', ok: r.counts.huntsWithEventsAppliedMismatch.length === 0, detail: `${r.counts.huntsWithEventsAppliedMismatch.length} of ${r.counts.huntsChecked} hunts differ${r.counts.huntsWithEventsAppliedMismatch.length ? `: ${r.counts.huntsWithEventsAppliedMismatch.slice(0, 5).join('; ')}` : ''}` },
    {
      check: 'credits, penalties, wins and player totals add up, before the final reconcile',
      ok: r.counts.creditsConsistent,
      detail:
        (r.counts.creditsConsistent ? 'the same keys as the fold, each held by an event of that key, every player\'s totals equal to its credits' : `${r.counts.creditProblems.join('; ')}`) +
        `; ${r.counts.provisionalCredits} held by another event than the fold's pick (arrival order, provisional until the final reconcile)`,
    },
    { check: 'every hunt equals the reference fold after the final reconcile', ok: f.huntsMismatched.length === 0, detail: `${f.huntsMismatched.length} hunts differ${f.huntsMismatched.length ? `: ${f.huntsMismatched.slice(0, 10).join(', ')}` : ''}` },
    { check: 'quarantine holds exactly the expected rejects, once', ok: f.quarantineMissing + f.quarantineWrongReason + f.quarantineUnexpected === 0 && f.quarantined === f.expectedRejects, detail: `${f.quarantined} quarantined of ${f.expectedRejects} expected; missing ${f.quarantineMissing}, wrong reason ${f.quarantineWrongReason}, unexpected ${f.quarantineUnexpected}` },
    { check: 'the DLQ holds a copy of every expected reject and nothing else', ok: f.dlqMissing + f.dlqUnexpected === 0, detail: `${f.dlqDistinct} distinct; missing ${f.dlqMissing}, unexpected ${f.dlqUnexpected}; extra copies (at-least-once, after a crash between DLQ send and commit): ${f.dlqExtraCopies}` },
    { check: 'backfill file: every invalid line quarantined once', ok: r.backfill.quarantined === r.backfill.invalidLines, detail: `${r.backfill.quarantined} of ${r.backfill.invalidLines}` },
    { check: 'every fault recovered', ok: r.faults.every((x) => !x.outcome.startsWith('FAILED')), detail: `${r.faults.length} faults` },
  ];
}

export function writeSoakReport(dir: string, result: SoakResult): string {
  const files = resultFilesOf(dir, 'soak', result.startedAt);
  const stamp = path.basename(files.json, '.json');
  const charts = timelineCharts(result);
  for (const [name, svg] of Object.entries(charts)) fs.writeFileSync(path.join(dir, `${stamp}-${name}.svg`), svg);
  writeResultFiles(files, result, markdownOf(result, stamp, Object.keys(charts)));
  return files.markdown;
}

function timelineCharts(r: SoakResult): Record<string, string> {
  const markers: Marker[] = r.faults.map((f) => ({ x: f.at, label: f.name }));
  const series = (name: string, pick: (s: SoakSample) => number) => ({ name, points: r.samples.map((s) => ({ x: s.at, y: pick(s) })) });
  const processes = Object.keys(r.samples[0]?.rssMb ?? {});
  return {
    throughput: lineChart({ title: 'Events applied per second', yLabel: 'events/s', series: [series('applied', (s) => s.eventsPerSecond)], markers }),
    lag: lineChart({ title: 'Consumer lag (records behind the high watermarks, by Postgres offsets)', yLabel: 'records', series: [series('lag', (s) => s.lag)], markers }),
    freshness: lineChart({ title: 'Freshness p99 per interval (commit minus Kafka timestamp)', yLabel: 'ms', series: [series('p99', (s) => s.freshnessP99Ms)], markers }),
    rss: lineChart({ title: 'Resident memory', yLabel: 'MB', series: processes.map((p) => series(p, (s) => s.rssMb[p] ?? NaN)), markers }),
  };
}

function markdownOf(r: SoakResult, stamp: string, charts: string[]): string {
  const started = Date.parse(r.startedAt);
  const at = (ms: number) => `${Math.round((ms - started) / 1000)} s`;
  const p99s = r.samples.map((s) => s.freshnessP99Ms).filter(Number.isFinite);
  const rssMax = (name: string) => Math.max(...r.samples.map((s) => s.rssMb[name] ?? 0).filter(Number.isFinite));
  return [
    `# Soak, ${r.startedAt}`,
    '',
    `Command: \`${r.command}\` (${r.minutes} minutes, ${r.rate} events/s; JSON: [${stamp}.json](${stamp}.json))`,
    '',
    '| check | result | detail |',
    '| --- | --- | --- |',
    ...r.verdicts.map((v) => `| ${v.check} | ${v.ok ? 'ok' : '**FAILED**'} | ${v.detail} |`),
    '',
    `Traffic: ${r.traffic.sent} records sent (${r.traffic.hostile} hostile; ${r.traffic.sendErrors} sends retried). Backfill file: ${r.backfill.events} events, ${r.backfill.invalidLines} invalid lines.`,
    `Freshness p99 per 5 s interval: median ${median(p99s).toFixed(1)} ms, worst ${Math.max(...p99s).toFixed(0)} ms (faults included). Peak RSS: ${Object.keys(r.samples[0]?.rssMb ?? {}).map((n) => `${n} ${rssMax(n).toFixed(0)} MB`).join(', ')}. Restarts: ${Object.entries(r.restarts).map(([n, c]) => `${n} ${c}`).join(', ')}.`,
    '',
    '## Faults',
    '',
    '| at | fault | took | outcome |',
    '| --- | --- | --- | --- |',
    ...r.faults.map((f) => `| ${at(f.at)} | ${f.name} | ${(f.tookMs / 1000).toFixed(1)} s | ${f.outcome.replace(/\|/g, '\\|')} |`),
    '',
    '## Timelines',
    '',
    ...charts.map((c) => `![${c}](${stamp}-${c}.svg)`),
    '',
  ].join('\n');
}

function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}
