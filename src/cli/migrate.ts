/** `hunt migrate`: apply pending database migrations. */
import type { Command } from 'commander';
import { loadConfig } from '../config';
import { migrate } from '../store/migrate';
import type { PostgresTarget } from '../store/pg-connection';
import { createPool } from '../store/pool';

export async function runMigrations(target: PostgresTarget): Promise<string[]> {
  const pool = createPool(target, 1);
  try {
    const client = await pool.connect();
    try {
      const onLockWait = (step: string, attempt: number) =>
        console.error(`${step}: waited for a lock other sessions hold (try ${attempt}); trying again shortly, the hot path runs meanwhile`);
      return (await migrate(client, undefined, { onLockWait })).map((m) => `${m.id}_${m.name}`);
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
  }
}

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('apply pending database migrations (numbered SQL files, under an advisory lock)')
    .action(async () => {
      const applied = await runMigrations(loadConfig());
      console.log(applied.length === 0 ? 'schema up to date' : `applied: ${applied.join(', ')}`);
    });
}
