/**
 * What the batch-plane benchmarks run on and which processes do their work: the machine and
 * service versions for the record, and CPU groups (Postgres, the Temporal server, this
 * process, which hosts the worker) for the per-phase CPU split of procfs.ts.
 */
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parentPid, type CpuGroups } from './procfs';
import { runningPid } from '../../infra/process';

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

/** The postmaster of the server behind `databaseUrl`, when it runs on this machine. */
export async function postmasterPid(databaseUrl: string): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    // The backend's parent is the postmaster; read it while the backend still lives.
    return parentPid(rows[0]?.pid ?? -1);
  } finally {
    await client.end();
  }
}

/** Postgres (postmaster and backends), the Temporal server, and this process (bench + in-process worker). */
export async function batchCpuGroups(databaseUrl: string, stateDir: string): Promise<CpuGroups> {
  const postmaster = (await postmasterPid(databaseUrl)) ?? -1;
  const temporalPid = runningPid(path.join(stateDir, 'temporal', 'temporal.pid')) ?? -1;
  return {
    postgres: (p) => p.pid === postmaster || p.ppid === postmaster,
    temporal: (p) => p.pid === temporalPid,
    bench: (p) => p.pid === process.pid,
  };
}
