/**
 * Timing of one benchmark phase with the CPU it cost, split by process group, so a figure
 * taken while other people's work shared the machine says so; and a checkpoint before a
 * timed phase, so one phase does not pay for the WAL the previous one wrote.
 */
import fs from 'node:fs';
import pg from 'pg';
import { cpuBetween, round, snapshotCpu, type CpuGroups, type CpuSplit } from './procfs';

export interface PhaseTiming {
  seconds: number;
  cpu: CpuSplit;
  /**
   * Cores' worth of time the hypervisor gave to other guests while ours wanted to run
   * (/proc/stat steal): load on the host that no process here shows.
   */
  stealCores: number;
}

export async function timePhase<T>(groups: CpuGroups, machineCores: number, work: () => Promise<T>): Promise<{ value: T } & PhaseTiming> {
  const cpuFrom = snapshotCpu();
  const stealFrom = stealTicks();
  const started = performance.now();
  const value = await work();
  const seconds = (performance.now() - started) / 1000;
  const stealTo = stealTicks();
  const stealCores = round(((stealTo.steal - stealFrom.steal) / Math.max(1, stealTo.total - stealFrom.total)) * machineCores, 2);
  return { value, seconds: round(seconds, 3), cpu: cpuBetween(cpuFrom, snapshotCpu(), groups, machineCores), stealCores };
}

/** Steal and total jiffies of the machine (first line of /proc/stat; steal is the 8th value). */
function stealTicks(): { steal: number; total: number } {
  const values = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  return { steal: values[7] ?? 0, total: values.reduce((a, b) => a + b, 0) };
}

/** CPU seconds per group over a phase, per `units` (e.g. µs per event with scale 1e6). */
export function cpuPer(timing: PhaseTiming, units: number, scale = 1e6): Record<string, number> {
  return Object.fromEntries(Object.entries(timing.cpu.cores).map(([group, cores]) => [group, round((cores * timing.cpu.seconds * scale) / Math.max(1, units), 1)]));
}

export async function checkpoint(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('CHECKPOINT');
  } finally {
    await client.end();
  }
}

/** Runs statements on a database with a short-lived connection (VACUUM cannot run in a pool's transaction). */
export async function runSql(databaseUrl: string, statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (const sql of statements) await client.query(sql);
  } finally {
    await client.end();
  }
}
