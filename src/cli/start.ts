/** `hunt start`: the main job. Brings up the embedded stack, migrates, and says where to look. */
import type { Command } from 'commander';
import { formatStatuses, stackUp } from '../../infra/stack';
import { loadConfig } from '../config';
import { runMigrations } from './migrate';

export function registerStartCommand(program: Command): void {
  program
    .command('start')
    .description('bring up the stack, migrate the database and print every address')
    .action(async () => {
      const config = loadConfig();
      console.log('Starting the embedded stack (first run builds/fetches Temporal and Kafka; later runs reuse them)...');
      const statuses = await stackUp(config);
      const applied = await runMigrations(config.databaseUrl);
      console.log(formatStatuses(statuses));
      console.log(`database schema: ${applied.length === 0 ? 'up to date' : `applied ${applied.join(', ')}`}`);
      if (config.temporal.uiUrl) console.log(`Temporal Web UI: ${config.temporal.uiUrl}`);
    });
}
