/**
 * The reconcile benchmark's record: recomputation rates (one big hunt, many small ones;
 * direct and through the workflow) and time from a corruption to its repair by the
 * Schedule, as JSON and a markdown table. The issue sets no goals here: figures only.
 */
import type { FenceWaits } from './lib/fence-probe';
import type { CpuSplit } from './lib/procfs';
import type { WorkflowTiming } from './lib/workflow-history';
import type { TimeToRepairResult } from './time-to-repair';

export interface RecomputeRun {
  path: 'direct' | 'temporal';
  seconds: number;
  eventsPerSecond: number;
  transactions: number;
  playersChecked: number;
  playersDrifted: number;
  treasuresChanged: number;
  /** Temporal path: where the workflow's time went, from its history. */
  workflow?: WorkflowTiming;
  cpu: CpuSplit;
  stealCores: number;
  cpuMicrosPerEvent: Record<string, number>;
  /** Direct path: the waits of a hot-path stand-in taking one of the hunts' fences every 20 ms meanwhile. */
  fenceWait?: FenceWaits;
}

export interface RecomputeCase {
  label: string;
  hunts: number;
  eventsPerHunt: number;
  playersPerHunt: number;
  events: number;
  /** Untimed: storing the events through applyEvents, 5,000 per transaction. */
  loadSeconds: number;
  direct: RecomputeRun;
  temporal?: RecomputeRun;
  /** temporal seconds / direct seconds - 1. */
  overhead?: number;
}

export interface ReconcileBenchResult {
  benchmark: 'reconcile';
  runId: string;
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: Record<string, string | number>;
  background: CpuSplit;
  setup: { huntsPerTransaction: number; seed: number; interval: string; intervalIsDefault: boolean; samples: number; streamRate: number; concurrent: boolean };
  recompute?: { single: RecomputeCase; many: RecomputeCase };
  timeToRepair?: TimeToRepairResult;
  figures: Figure[];
  cleanup: string[];
}

export interface Figure {
  target: string;
  measured: string;
  /** No goal in the issue for these: undefined. */
  goal?: string;
  met?: boolean;
}

const n = (v: number) => Math.round(v).toLocaleString('en-US');
const pct = (v: number) => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)}%`;

export function reconcileFigures(r: Pick<ReconcileBenchResult, 'recompute' | 'timeToRepair'>): Figure[] {
  const figures: Figure[] = [];
  for (const c of r.recompute ? [r.recompute.single, r.recompute.many] : []) {
    const via = c.temporal ? `; via the workflow ${n(c.temporal.eventsPerSecond)} events/s, ${c.temporal.seconds.toFixed(1)} s (${pct(c.overhead ?? 0)})` : '';
    figures.push({
      target: `recomputation rate, ${c.label}`,
      measured: `${n(c.direct.eventsPerSecond)} events/s (${c.direct.seconds.toFixed(1)} s, ${c.direct.transactions} transaction${c.direct.transactions === 1 ? '' : 's'})${via}`,
    });
    const w = c.direct.fenceWait;
    if (w) {
      figures.push({
        target: `longest stop of the hot path for one of the hunts' fences during that reconcile (direct), ${c.label}`,
        measured: `${w.maxMs} ms (p99 ${w.p99Ms} ms over ${w.probes} takes of a fence, one every 20 ms)`,
      });
    }
  }
  const t = r.timeToRepair;
  if (t) {
    figures.push({
      target: `time from a corruption to its repair, schedule every ${t.interval}`,
      measured:
        t.meanSeconds === undefined
          ? 'no corruption repaired before the deadline'
          : `mean ${t.meanSeconds} s over ${t.repaired} of ${t.samples.length} corruptions (min ${t.minSeconds} s, max ${t.maxSeconds} s); ` +
            `expected for a random moment: interval/2 + fire-to-repair = ${t.intervalSeconds / 2} + ${t.meanSecondsAfterFire} = ${t.expectedSeconds} s`,
    });
  }
  return figures;
}

function cpuCell(run: RecomputeRun): string {
  const c = run.cpu.cores;
  return `PG ${c.postgres}, bench ${c.bench}, Temporal ${c.temporal}, other ${c.other} (busy ${run.cpu.machineBusyCores}; steal ${run.stealCores})`;
}

export function renderReconcileMarkdown(r: ReconcileBenchResult, jsonName: string): string {
  const m = r.machine;
  const lines: string[] = [];
  lines.push(`# Reconcile benchmark, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC`, '');
  lines.push(
    `\`${r.command}\` on ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, Node ${m.node}, ${m.postgres} (${m.postgresSettings}), ${m.temporal}; ` +
      `embedded stack, fresh databases per part, dropped afterwards. Background load before the run: ${r.background.machineBusyCores} of ${m.cpus} cores busy.`,
    '',
  );
  lines.push('| measure | measured |', '| --- | --- |');
  for (const f of r.figures) lines.push(`| ${f.target} | ${f.measured} |`);
  lines.push('');
  if (r.recompute) {
    lines.push(
      '| case | path | time | events/s | transactions | players checked / drifted | CPU during the phase, cores | CPU per event, µs (PG / bench) |',
      '| --- | --- | ---: | ---: | ---: | --- | --- | --- |',
    );
    for (const c of [r.recompute.single, r.recompute.many]) {
      for (const run of c.temporal ? [c.direct, c.temporal] : [c.direct]) {
        const w = run.workflow;
        const how =
          run.path === 'direct'
            ? '`reconcileHunts` called directly'
            : `workflow \`reconcile\` with the hunt ids${w ? ` (${(run.seconds - w.activitySeconds).toFixed(2)} s outside the activity, ${w.historyEvents} history events)` : ''}`;
        lines.push(
          `| ${c.label} | ${how} | ${run.seconds.toFixed(2)} s | ${n(run.eventsPerSecond)} | ${run.transactions} | ${n(run.playersChecked)} / ${run.playersDrifted} | ${cpuCell(run)} | ${run.cpuMicrosPerEvent.postgres} / ${run.cpuMicrosPerEvent.bench} |`,
        );
      }
    }
    lines.push('');
    lines.push(recomputeNotes(r), '');
  }
  if (r.timeToRepair) lines.push(...repairNotes(r.timeToRepair, r.setup), '');
  lines.push(`Raw figures: \`bench/results/${jsonName}\`.`);
  return lines.join('\n') + '\n';
}

function recomputeNotes(r: ReconcileBenchResult): string {
  const rc = r.recompute!;
  return (
    `How: each case in its own fresh database; the events are generated by the seeded TrafficGenerator (event time in generation order) and stored through the hot path's ` +
    `\`applyEvents\`, 5,000 per transaction (untimed: ${rc.single.loadSeconds.toFixed(0)} s and ${rc.many.loadSeconds.toFixed(0)} s, loaded side by side), then \`VACUUM (ANALYZE)\` and a \`CHECKPOINT\`. ` +
    `Timed: \`reconcileHunts(pool, huntIds, runId, repair = true)\` from src/store/correctness/reconcile.ts, the activity's own step: lock the hunts' fence rows, recompute from raw events ` +
    `into temp tables (\`recomputeInto\`), diff against the live rows and record drift, replace the live rows, record the run; ${r.setup.huntsPerTransaction} hunts per transaction as the workflow does. ` +
    `Then the same through the \`reconcile\` workflow (\`{ huntIds, repair: true }\`) on a worker in the bench process (after an untimed run with no hunts, so the worker's first-run costs are not counted). ` +
    `The workflow path runs second, on live rows the direct run has just rewritten. Rates are stored events / seconds. ` +
    `${r.setup.concurrent ? 'The time-to-repair measurement ran beside these phases (a stream of ' + r.setup.streamRate + ' events/s and a one-hunt recomputation per second on another database), so "other" and "bench" CPU include a little of it.' : ''}`
  );
}

function repairNotes(t: TimeToRepairResult, setup: ReconcileBenchResult['setup']): string[] {
  const lines = [
    `Time to repair: schedule \`${t.scheduleId}\` with the \`hunt-reconcile\` spec (workflow \`reconcile\`, input \`{}\`, every ${t.interval}${setup.intervalIsDefault ? ', the default RECONCILE_EVERY' : ', **not** the default interval'}, ` +
      `overlap ${t.overlap}, catch-up window ${t.catchupWindow}) on the run's own task queue and worker, deleted afterwards. Events flowed into hunt-0 at ${t.streamRate}/s ` +
      `(${n(t.streamEvents)} stored in all). ${t.samples.length} player rows were corrupted (\`score = score + 1000\`, under the hunt's fence) at phases spread evenly over the interval, ` +
      `and each was polled every second (${t.pollChecks} polls, ${t.pollCheckMeanMs} ms each: a recomputation of the hunt into temp tables and a diff, in one snapshot) until it equalled the recomputation. ` +
      `Because the schedule fires at fixed times, a corruption waits for the next fire (half the interval on average) and then for the run: schedule → workflow start → activity → the hunt's transaction. ` +
      `Baseline before any corruption: ${t.baselineDrift} drifted rows.`,
    '',
    '| player | phase after a fire | corrupted | repaired | seconds | fire that repaired it | seconds after that fire |',
    '| --- | ---: | --- | --- | ---: | --- | ---: |',
  ];
  for (const s of t.samples) {
    lines.push(
      `| ${s.playerId} | ${s.phase.toFixed(2)} | ${s.corruptedAt.slice(11, 19)} | ${s.repairedAt?.slice(11, 19) ?? '**not repaired**'} | ${s.seconds ?? '–'} | ${s.fireAt?.slice(11, 19) ?? '–'} | ${s.secondsAfterFire ?? '–'} |`,
    );
  }
  lines.push('', '| scheduled run | start delay | duration | hunts | players drifted | status |', '| --- | ---: | ---: | ---: | ---: | --- |');
  for (const run of t.runs) {
    lines.push(`| ${run.scheduledAt.slice(11, 19)} | ${run.startDelaySeconds ?? '–'} s | ${run.durationSeconds ?? '–'} s | ${run.hunts ?? '–'} | ${run.playersDrifted ?? '–'} | ${run.status ?? '?'} |`);
  }
  if (t.warnings.length) lines.push('', ...t.warnings.map((w) => `- warning: ${w}`));
  return lines;
}
