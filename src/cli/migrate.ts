/** `hunt migrate`: apply pending database migrations. */
import type { Command } from 'commander';
import { loadConfig } from '../config';
import { migrate } from '../store/migrate';
import type { PostgresTarget } from '../store/pg-connection';
import { createPool, IDLE_IN_TRANSACTION_LIMIT_MS, processApplicationName } from '../store/pool';

/** How long the migration session waits for a connection. */
const CONNECT_TIMEOUT_MS = 30_000;

export async function runMigrations(target: PostgresTarget): Promise<string[]> {
  // Bounded as the other processes' sessions are (store/pool.ts): a migrator frozen mid-
  // migration (a paused VM, a suspended laptop) held its exclusive table lock, and the hot
  // path's commits behind it, until TCP gave up, hours later; Postgres now ends the session.
  const pool = createPool(target, 1, undefined, {
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_LIMIT_MS,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    fallback_application_name: processApplicationName('hunt migrate'),
  });
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
