/**
 * Process measurements from /proc (Linux): resident memory of one process, and CPU time
 * split between the consumer, Postgres, Kafka and everything else on the machine, so a
 * figure can say which side was busy (on a 2-core machine they all compete).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { procStatFields } from '../../infra/process';

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** VmRSS and VmHWM (peak resident set) in MiB, or undefined once the process is gone. */
export function memoryOf(pid: number): { rssMb: number; peakRssMb: number } | undefined {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  return { rssMb: kbField(status, 'VmRSS') / 1024, peakRssMb: kbField(status, 'VmHWM') / 1024 };
}

/** A `Name:   123 kB` line's number from /proc text (status, meminfo); NaN when absent. */
export function kbField(text: string, field: string): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
}

/** Samples a process's RSS on an interval and keeps the peak. */
export class RssSampler {
  private peakMb = 0;
  private samples = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 200,
  ) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.sample();
  }

  private sample(): void {
    const mem = memoryOf(this.pid);
    if (!mem) return;
    this.samples++;
    this.peakMb = Math.max(this.peakMb, mem.rssMb);
  }

  /** Stops sampling; VmHWM (the kernel's own peak) catches spikes between samples. */
  stop(): { sampledPeakMb: number; kernelPeakMb: number | undefined; samples: number } {
    this.sample();
    clearInterval(this.timer);
    return { sampledPeakMb: this.peakMb, kernelPeakMb: memoryOf(this.pid)?.peakRssMb, samples: this.samples };
  }
}

interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  ticks: number;
}

function readProcStats(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    // Undefined when the process ended between readdir and read.
    const fields = procStatFields(Number(entry));
    if (!fields) continue;
    stats.push({ pid: Number(entry), ppid: Number(fields[4]), comm: fields[2] ?? '', ticks: Number(fields[14]) + Number(fields[15]) });
  }
  return stats;
}

/** Busy and total jiffies of the whole machine, from the first line of /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: total - idle, total };
}

/** Which processes count as which side; a process matching none is "other". */
export interface CpuGroups {
  [name: string]: (p: ProcStat) => boolean;
}

export interface CpuSnapshot {
  at: number;
  perPid: Map<number, ProcStat>;
  machine: { busy: number; total: number };
}

export function snapshotCpu(): CpuSnapshot {
  return { at: performance.now(), perPid: new Map(readProcStats().map((p) => [p.pid, p])), machine: machineTicks() };
}

export interface CpuSplit {
  seconds: number;
  /** CPU used per group, in cores (1.0 = one core busy the whole time). */
  cores: Record<string, number>;
  /** The busiest processes outside the groups (by command name), to tell noise from our own load. */
  otherTop: { comm: string; cores: number }[];
  machineBusyCores: number;
  machineCores: number;
}

/** CPU used between two snapshots, per group (processes that started in between count in full). */
export function cpuBetween(from: CpuSnapshot, to: CpuSnapshot, groups: CpuGroups, cores: number): CpuSplit {
  const seconds = (to.at - from.at) / 1000;
  const used: Record<string, number> = Object.fromEntries(Object.keys(groups).map((g) => [g, 0]));
  const ungrouped = new Map<string, number>();
  let grouped = 0;
  for (const p of to.perPid.values()) {
    const delta = p.ticks - (from.perPid.get(p.pid)?.ticks ?? 0);
    const name = Object.keys(groups).find((g) => groups[g]?.(p));
    if (name === undefined) {
      if (delta > 0) ungrouped.set(p.comm, (ungrouped.get(p.comm) ?? 0) + delta);
      continue;
    }
    used[name] = (used[name] ?? 0) + delta;
    grouped += delta;
  }
  const busy = to.machine.busy - from.machine.busy;
  const toCores = (ticks: number) => round(ticks / CLOCK_TICKS / seconds, 2);
  const result: Record<string, number> = {};
  for (const [name, ticks] of Object.entries(used)) result[name] = toCores(ticks);
  // Machine busy time includes kernel work (softirq, network) nobody is charged for.
  result.other = toCores(Math.max(0, busy - grouped));
  const otherTop = [...ungrouped.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([comm, ticks]) => ({ comm, cores: toCores(ticks) }));
  return { seconds: round(seconds, 2), cores: result, otherTop, machineBusyCores: toCores(busy), machineCores: cores };
}

/** cutime + cstime of each parent: CPU of its children that have ended and been waited for. */
export function reapedTicks(parents: Record<string, number> | undefined): Record<string, number> {
  const ticks: Record<string, number> = {};
  for (const [group, pid] of Object.entries(parents ?? {})) {
    try {
      const raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
      ticks[group] = Number(fields[13]) + Number(fields[14]);
    } catch {
      // The parent is gone or not on this machine: nothing to add.
    }
  }
  return ticks;
}

/** Moves the CPU of children that ended during the window from "other" to their group. */
export function addReapedChildren(cpu: CpuSplit, from: Record<string, number>, to: Record<string, number>): void {
  for (const [group, ticks] of Object.entries(to)) {
    const cores = round((ticks - (from[group] ?? ticks)) / CLOCK_TICKS / cpu.seconds, 2);
    if (cores <= 0) continue;
    cpu.cores[group] = round((cpu.cores[group] ?? 0) + cores, 2);
    cpu.cores.other = round(Math.max(0, (cpu.cores.other ?? 0) - cores), 2);
  }
}

/** The parent of a process on this machine, or undefined when there is no such process. */
export function parentPid(pid: number): number | undefined {
  const ppid = Number(procStatFields(pid)?.[4]);
  return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
}

export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** How busy the machine is before the benchmark starts (other people's builds, tests, stacks). */
export async function backgroundLoad(ms = 3000): Promise<CpuSplit> {
  const from = snapshotCpu();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return cpuBetween(from, snapshotCpu(), {}, os.availableParallelism());
}
