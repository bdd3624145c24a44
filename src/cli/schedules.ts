/**
 * `hunt schedules apply|list`: the batch plane's Temporal Schedules, from declarative specs.
 * The Temporal SDK is loaded when a command runs, not when `hunt` starts (see main.ts).
 */
import type { Command } from 'commander';
import { loadConfig } from '../config';

const temporal = async () => ({ ...(await import('../temporal/client')), ...(await import('../temporal/schedules')) });

export function registerSchedulesCommands(program: Command): void {
  const schedules = program.command('schedules').description('Temporal Schedules of the batch plane');
  schedules
    .command('apply')
    .description('create missing schedules and update existing ones (idempotent; paused ones stay paused)')
    .action(async () => {
      const config = loadConfig();
      const { connectClient, applySchedules } = await temporal();
      const { client, close } = await connectClient(config);
      try {
        for (const r of await applySchedules(client, config)) console.log(`${r.action.padEnd(8)} ${r.scheduleId}`);
      } finally {
        await close();
      }
    });
  schedules
    .command('list')
    .description('the declared schedules and their state on the server')
    .action(async () => {
      const config = loadConfig();
      const { connectClient, scheduleStates } = await temporal();
      const { client, close } = await connectClient(config);
      try {
        for (const { spec, state, known } of await scheduleStates(client, config)) {
          console.log(`${spec.scheduleId.padEnd(26)} ${spec.workflowType.padEnd(12)} ${(spec.cron ? `cron ${spec.cron}` : `every ${spec.every}`).padEnd(18)} ${state}`);
          if (!known) process.exitCode = 1;
        }
      } finally {
        await close();
      }
    });
}
