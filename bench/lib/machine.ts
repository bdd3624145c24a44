/**
 * What the batch-plane benchmarks run on and which processes do their work: the machine and
 * service versions for the record, and CPU groups (Postgres, the Temporal server, this
 * process, which hosts the worker) for the per-phase CPU split of procfs.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { CpuGroups } from './procfs';

export async function machineOf(databaseUrl: string, services: Record<string, string>): Promise<Record<string, string | number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ v: string; shared_buffers: string; work_mem: string }>(
    "SELECT split_part(version(), ' on ', 1) AS v, current_setting('shared_buffers') AS shared_buffers, current_setting('work_mem') AS work_mem",
  );
  await client.end();
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: os.release(),
    postgres: rows[0]?.v ?? 'unknown',
    postgresSettings: `shared_buffers ${rows[0]?.shared_buffers}, work_mem ${rows[0]?.work_mem}`,
    ...services,
  };
}

/** Postgres (postmaster and backends), the Temporal server, and this process (bench + in-process worker). */
export async function batchCpuGroups(databaseUrl: string, stateDir: string): Promise<CpuGroups> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  // The backend's parent is the postmaster; read it while the backend still lives.
  const postmaster = Number(fs.readFileSync(`/proc/${rows[0]?.pid ?? -1}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] ?? -1);
  await client.end();
  const temporalPidFile = path.join(stateDir, 'temporal', 'temporal.pid');
  const temporalPid = fs.existsSync(temporalPidFile) ? Number(fs.readFileSync(temporalPidFile, 'utf8').trim()) : -1;
  return {
    postgres: (p) => p.pid === postmaster || p.ppid === postmaster,
    temporal: (p) => p.pid === temporalPid,
    bench: (p) => p.pid === process.pid,
  };
}
