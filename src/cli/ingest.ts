/** `hunt ingest`: the hot path consumer and the read API, until SIGTERM/SIGINT. */
import type { Command } from 'commander';
import { loadConfig } from '../config';
import { runIngestService } from '../ingest/service';
import { createLogger } from '../log';
import { stopWithin, untilSignal } from './stop';

export function registerIngestCommand(program: Command): void {
  program
    .command('ingest')
    .description('consume hunt.events into Postgres (exactly-once effect) and serve the read API')
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config, 'ingest');
      const service = await runIngestService(config, logger);
      const died = await Promise.race([untilSignal(logger).then(() => undefined), service.failed]).catch((err: Error) => err);
      await stopWithin(() => service.stop(), logger);
      // A consumer that died for good ends the process with an error, so a supervisor restarts it.
      if (died) throw died;
      // Ends the process rather than wait for its event loop to empty: a restart kafkajs had
      // begun before the stop (during a Kafka outage) joins the group afterwards and holds
      // partitions this stopped member never commits, unseen, for as long as it lives.
      process.exit(0);
    });
}
