/** The `hunt` command: one subcommand per file in this folder. */
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config';
import { registerCorrectnessCommands } from './correctness';
import { registerIngestCommand } from './ingest';
import { registerJobCommands } from './jobs';
import { registerMigrateCommand } from './migrate';
import { registerProduceCommand } from './produce';
import { registerSchedulesCommands } from './schedules';
import { registerSchemasCommand } from './schemas';
import { registerSloCommand } from './slo';
import { registerStackCommands } from './stack';
import { registerWorkerCommand } from './worker';
import { registerStartCommand } from './start';

const program = new Command('hunt')
  .description('Treasure Hunt Engine: live game data, fresh and correct')
  .showHelpAfterError()
  .exitOverride();

registerStartCommand(program);
registerStackCommands(program);
registerMigrateCommand(program);
registerIngestCommand(program);
registerProduceCommand(program);
registerSchemasCommand(program);
registerWorkerCommand(program);
registerJobCommands(program);
registerSchedulesCommands(program);
registerCorrectnessCommands(program);
registerSloCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (err instanceof ConfigError) {
    console.error(err.message);
    process.exitCode = 78; // EX_CONFIG
  } else {
    console.error(`hunt: ${(err as Error).message}`);
    process.exitCode = 1;
  }
  // A failed command may leave clients (Kafka, Postgres, Temporal) that would keep the
  // process alive, half-running; fail loudly and completely instead.
  process.exit();
}
