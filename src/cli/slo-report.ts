/**
 * The arithmetic and the text of `hunt slo`: from counts per window (events, events within
 * the target) to the share met, the error budget used, and whether the objective holds.
 */
import { formatCount } from './progress';

export interface SloWindowCounts {
  /** For people: "last hour". */
  label: string;
  /** For machines: "1h". */
  window: string;
  events: number;
  withinTarget: number;
}

export interface SloWindowReport extends SloWindowCounts {
  late: number;
  /** withinTarget / events; null without events. */
  share: number | null;
  /** Late events the objective allows in this window: events × (1 − objective). */
  allowedLate: number;
  /** late / allowedLate: 1 is the whole budget; null without events. */
  budgetUsed: number | null;
  /** share ≥ objective; null without events. */
  met: boolean | null;
}

export function sloReport(windows: readonly SloWindowCounts[], objective: number): SloWindowReport[] {
  if (!(objective > 0 && objective < 1)) throw new Error(`the objective must be between 0 and 1, got ${objective}`);
  return windows.map((w) => {
    const late = w.events - w.withinTarget;
    const allowedLate = w.events * (1 - objective);
    if (w.events === 0) return { ...w, late, share: null, allowedLate, budgetUsed: null, met: null };
    // Compared in counts, not shares: 999/1000 against 0.999 must not fail on a rounding.
    return { ...w, late, share: w.withinTarget / w.events, allowedLate, budgetUsed: late / allowedLate, met: late <= allowedLate + 1e-9 * w.events };
  });
}

export interface SloTextOptions {
  targetMs: number;
  objective: number;
  /** Targets ingest processes counted against that differ from targetMs. */
  otherTargets: number[];
}

export function formatSloReport(report: readonly SloWindowReport[], options: SloTextOptions): string[] {
  const { targetMs, objective } = options;
  const header = ['window', 'events', `within ${targetMs} ms`, 'late', 'share', 'budget used', 'status'];
  const rows = report.map((r) => [
    r.label,
    formatCount(r.events),
    formatCount(r.withinTarget),
    formatCount(r.late),
    r.share === null ? '-' : percent(r.share, 3),
    r.budgetUsed === null ? '-' : percent(r.budgetUsed, 0),
    r.met === null ? 'no events' : r.met ? 'met' : 'MISSED',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === 0 || i === cells.length - 1 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)))
      .join('   ')
      .trimEnd();
  const lines = [
    `Freshness SLO: events applied within ${targetMs} ms of their Kafka timestamp; objective ${percent(objective, 3)}`,
    '',
    line(header),
    ...rows.map(line),
  ];
  if (options.otherTargets.length > 0) {
    lines.push(
      '',
      `Note: ingest processes also counted against ${options.otherTargets.map((t) => `${t} ms`).join(', ')} in the last day; ` +
        `those counts are not in this report. Set SLO_FRESHNESS_TARGET_MS the same for hunt ingest and hunt slo.`,
    );
  }
  if (report.every((r) => r.events === 0) && options.otherTargets.length === 0) {
    lines.push('', 'No events counted: is `hunt ingest` running against this database (DATABASE_URL), with traffic?');
  }
  return lines;
}

/** 0.99972 → "99.972%"; trailing zeros dropped, so 0.999 → "99.9%". */
function percent(fraction: number, decimals: number): string {
  return `${Number((fraction * 100).toFixed(decimals))}%`;
}
