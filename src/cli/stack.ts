/** `hunt stack up|down|status|logs`: the embedded stack's lifecycle. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config';

/** The stack's modules pull in the Temporal SDK: loaded when a stack command runs. */
const infra = () => import('../../infra/stack');

const lineCount = (raw: string) => {
  // tail's own forms: N lines from the end, +N from line N on.
  if (!/^\+?\d{1,9}$/.test(raw)) throw new InvalidArgumentError(`expected a whole number of lines (or +N, from line N on), got '${raw}'`);
  return raw;
};

export function registerStackCommands(program: Command): void {
  const stack = program.command('stack').description('run the embedded Postgres, Kafka and Temporal as local processes');

  stack
    .command('up')
    .description('provision and start what is not running (idempotent), wait until healthy, print addresses')
    .option('--quiet', 'print nothing on success')
    .action(async (opts: { quiet?: boolean }) => {
      const { formatStatuses, stackUp } = await infra();
      const statuses = await stackUp(loadConfig());
      if (!opts.quiet) console.log(formatStatuses(statuses));
    });

  stack
    .command('down')
    .description('stop the processes `up` started (external services are left alone)')
    .action(async () => {
      const { formatStatuses, stackDown } = await infra();
      console.log(formatStatuses(await stackDown(loadConfig())));
    });

  stack
    .command('status')
    .description('per service: up/down, address, version')
    .action(async () => {
      const { formatStatuses, stackStatus } = await infra();
      const statuses = await stackStatus(loadConfig());
      console.log(formatStatuses(statuses));
      if (statuses.some((s) => s.state !== 'up')) process.exitCode = 3;
    });

  stack
    .command('logs')
    .description("print a service's log (postgres, kafka or temporal); all when none is named")
    .argument('[service]', 'postgres | kafka | temporal')
    .option('-n, --lines <n>', 'lines from the end (or +N: from line N on)', lineCount, '50')
    .option('-f, --follow', 'keep printing new lines')
    .action(async (name: string | undefined, opts: { lines: string; follow?: boolean }) => {
      const { stackServices } = await infra();
      const services = stackServices(loadConfig()).filter((s) => !name || s.name === name);
      if (services.length === 0) throw new Error(`unknown service '${name}': expected postgres, kafka or temporal`);
      const files = services.map((s) => s.logFile).filter((f): f is string => !!f && fs.existsSync(f));
      if (files.length === 0) {
        console.log('no logs: the named services are external or have never been started');
        return;
      }
      const tail = spawn('tail', ['-n', opts.lines, ...(opts.follow ? ['-F'] : []), ...files], { stdio: 'inherit' });
      // Its exit is the command's: a tail that failed must not read as success.
      process.exitCode = await new Promise<number>((resolve) => {
        tail.once('error', () => resolve(1));
        tail.once('close', (code) => resolve(code ?? 1));
      });
    });
}
