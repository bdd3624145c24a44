/**
 * Progress of a batch job in the terminal: a bar with rate and ETA redrawn in place on a
 * terminal, a plain line every few seconds otherwise (logs, CI, pipes). Rendering is a pure
 * function of a snapshot, so it is tested without a terminal. Hand-written: a bar, a rate
 * and an ETA are a few dozen lines, less than a dependency to vet and keep current.
 */

export type ProgressUnit = 'bytes' | 'records' | 'hunts';

export interface ProgressSnapshot {
  /** The workflow type: backfill, reprocess, reconcile ... */
  job: string;
  /** What the job says it is doing: running, paused, filling, catching-up ... */
  phase?: string;
  done: number;
  /** Unknown (no bar, no ETA) until the job knows its size. */
  total?: number;
  /** What done and total count; none for a job that reports no progress (then no amounts). */
  unit?: ProgressUnit;
  /** Throughput to show, in the job's own terms (e.g. a file backfill's records/s). */
  rate?: { perSecond: number; unit: string };
  etaSeconds?: number;
  /** Short extra text, e.g. counts; cut first when the line is too long. */
  detail?: string;
  /** Seconds since the job started (shown when nothing else moves). */
  elapsedSeconds?: number;
}

const BAR_WIDTH = 24;
const MIN_BAR_WIDTH = 6;
const MIN_DETAIL = 12;

/**
 * One terminal line: `backfill  [█████░░░]  41.0%  9.8 MB / 23.9 MB  27,681 records/s  ETA 0:41  inserted ...`.
 * On a narrow terminal the detail goes first, then the bar shrinks, then goes; the line never wraps.
 */
export function renderBarLine(s: ProgressSnapshot, columns = 100): string {
  const room = columns - 1; // the last column would wrap on some terminals
  const label = s.phase && s.phase !== 'running' ? `${s.job} (${s.phase})` : s.job;
  const fraction = fractionDone(s);
  const numbers = [...(fraction === undefined ? [] : [`${(fraction * 100).toFixed(1).padStart(5)}%`]), ...figures(s)].join('  ');
  let line = `${label}  ${numbers}`;
  if (fraction !== undefined) {
    const width = Math.min(BAR_WIDTH, room - line.length - 4);
    if (width >= MIN_BAR_WIDTH) {
      const filled = Math.round(fraction * width);
      line = `${label}  [${'█'.repeat(filled)}${'░'.repeat(width - filled)}]  ${numbers}`;
    }
  }
  if (line.length >= room) return line.slice(0, room);
  // A few characters of the detail say nothing; leave it out rather than show "ins…".
  if (!s.detail || room - line.length < 2 + Math.min(s.detail.length, MIN_DETAIL)) return line;
  const full = `${line}  ${s.detail}`;
  return full.length <= room ? full : `${full.slice(0, room - 1)}…`;
}

/** One log line: `backfill running: 41.0%, 9.8 MB of 23.9 MB, 27,681 records/s, ETA 0:41; inserted ...`. */
export function renderPlainLine(s: ProgressSnapshot): string {
  const fraction = fractionDone(s);
  const head = `${s.job} ${s.phase ?? 'running'}`;
  const figuresText = [fraction === undefined ? undefined : `${(fraction * 100).toFixed(1)}%`, ...figures(s, ' of ')].filter(Boolean).join(', ');
  return `${head}${figuresText ? `: ${figuresText}` : ''}${s.detail ? `; ${s.detail}` : ''}`;
}

function fractionDone(s: ProgressSnapshot): number | undefined {
  if (s.total === undefined) return undefined;
  if (s.total <= 0) return 1;
  return Math.min(1, Math.max(0, s.done / s.total));
}

function figures(s: ProgressSnapshot, of = ' / '): string[] {
  const out: string[] = [];
  if (s.unit) out.push(s.total === undefined ? formatAmount(s.done, s.unit) : `${formatAmount(s.done, s.unit, s.total)}${of}${formatAmount(s.total, s.unit)}`);
  if (s.rate) out.push(`${formatCount(s.rate.perSecond)} ${s.rate.unit}`);
  if (s.etaSeconds !== undefined && Number.isFinite(s.etaSeconds)) out.push(`ETA ${formatDuration(s.etaSeconds)}`);
  else if (s.elapsedSeconds !== undefined) out.push(`${formatDuration(s.elapsedSeconds)} elapsed`);
  return out;
}

export function formatAmount(n: number, unit: ProgressUnit, scaleOf = n): string {
  if (unit !== 'bytes') return `${formatCount(n)} ${unit}`;
  // Done and total in the same scale, so "980.0 kB / 1.2 MB" never happens.
  const scales: [number, string][] = [[1e9, 'GB'], [1e6, 'MB'], [1e3, 'kB']];
  const [factor, name] = scales.find(([f]) => scaleOf >= f) ?? [1, 'B'];
  return factor === 1 ? `${n} B` : `${(n / factor).toFixed(1)} ${name}`;
}

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 41 → "0:41", 3725 → "1:02:05". */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/**
 * Rate of `done` over the last `windowMs` of samples, for an ETA that follows the job's
 * current speed (a job's own average includes pauses and warm-up).
 */
export class RateTracker {
  private samples: { atMs: number; done: number }[] = [];

  constructor(private readonly windowMs = 30_000) {}

  add(atMs: number, done: number): void {
    this.samples.push({ atMs, done });
    while (this.samples.length > 2 && atMs - (this.samples[0] as { atMs: number }).atMs > this.windowMs) this.samples.shift();
  }

  /** Units of `done` per second; undefined until two samples at least a second apart. */
  perSecond(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.atMs - first.atMs < 1000) return undefined;
    return ((last.done - first.done) * 1000) / (last.atMs - first.atMs);
  }

  etaSeconds(total: number | undefined): number | undefined {
    const rate = this.perSecond();
    const last = this.samples[this.samples.length - 1];
    if (total === undefined || !last || rate === undefined || rate <= 0) return undefined;
    return Math.max(0, (total - last.done) / rate);
  }
}

export interface ProgressOutput {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/**
 * Shows snapshots as they come: on a terminal one line redrawn in place; otherwise a plain
 * line when the phase changes or `plainEveryMs` has passed.
 */
export function createProgressPrinter(out: ProgressOutput, options: { plainEveryMs?: number; now?: () => number } = {}) {
  const { plainEveryMs = 5000, now = Date.now } = options;
  let lastPlainAt = -Infinity;
  let lastPhase: string | undefined;
  let drawn = false;
  return {
    update(s: ProgressSnapshot): void {
      if (out.isTTY) {
        // A pseudo-terminal may report 0 columns (script, some CI runners): take a common width.
        out.write(`\r${renderBarLine(s, out.columns || 100)}\x1b[K`);
        drawn = true;
        return;
      }
      if (now() - lastPlainAt >= plainEveryMs || s.phase !== lastPhase) {
        out.write(`${renderPlainLine(s)}\n`);
        lastPlainAt = now();
        lastPhase = s.phase;
      }
    },
    /** Ends the redrawn line, so what follows starts on a line of its own. */
    finish(): void {
      if (drawn) out.write('\n');
      drawn = false;
    },
  };
}
