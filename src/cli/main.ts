/** The `hunt` command: one subcommand per file in this folder. */
import { format } from 'node:util';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config';
import { ConnectionSettingsError, explainConnectionError } from '../connection-hints';
import { scrubSecrets } from '../redact';
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

// Everything the command prints goes through the scrubbing (see src/redact.ts): a status
// line or an error that quotes a driver's message cannot show a secret either.
for (const method of ['log', 'info', 'warn', 'error'] as const) {
  const print = console[method].bind(console);
  console[method] = (...args: unknown[]) => print(scrubSecrets(format(...args)));
}

// An error nobody awaited (a driver's background socket, say) would otherwise be printed by
// Node with its whole text; it goes through the same scrubbing as every other error.
const printUnhandled = (err: unknown) => {
  console.error(`hunt: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(70); // EX_SOFTWARE
};
process.on('uncaughtException', printUnhandled);
process.on('unhandledRejection', printUnhandled);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (err instanceof ConfigError) {
    console.error(err.message);
    process.exitCode = 78; // EX_CONFIG
  } else {
    // A refused password or an untrusted certificate: say which settings to check.
    const hint = err instanceof ConnectionSettingsError ? undefined : explainConnectionError(err);
    console.error(`hunt: ${describe(err)}${hint ? `\n  to fix: ${hint}` : ''}`);
    process.exitCode = 1;
  }
  // A failed command may leave clients (Kafka, Postgres, Temporal) that would keep the
  // process alive, half-running; fail loudly and completely instead.
  process.exit();
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
