/** `hunt worker`: the Temporal worker of the batch plane, until SIGTERM/SIGINT. */
import type { Command } from 'commander';
import { loadConfig } from '../config';
import { createLogger } from '../log';
import { stopWithin } from './stop';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run the batch-plane Temporal worker (task queue from TEMPORAL_TASK_QUEUE, default hunt-batch)')
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config, 'worker');
      const { createWorkerService, installRuntime, WorkerStartAbortedError } = await import('../worker/service');
      installRuntime(config.worker);
      // A stop asked for while the worker still waits for Temporal ends it there (the SDK's
      // own signal handling starts with the worker).
      const starting = new AbortController();
      const stopStarting = () => starting.abort();
      process.once('SIGTERM', stopStarting);
      process.once('SIGINT', stopStarting);
      let service: Awaited<ReturnType<typeof createWorkerService>>;
      try {
        service = await createWorkerService(config, logger, config.temporal.taskQueue, starting.signal);
      } catch (err) {
        if (!(err instanceof WorkerStartAbortedError)) throw err;
        logger.info('worker stopped before it could reach Temporal');
        process.exit(0);
      } finally {
        process.off('SIGTERM', stopStarting);
        process.off('SIGINT', stopStarting);
      }
      logger.info({ taskQueue: config.temporal.taskQueue, metricsPort: config.worker.metricsPort }, 'worker running');
      // The SDK stops the worker gracefully on SIGINT/SIGTERM: running activities get the grace time.
      await service.run();
      await stopWithin(
        () => service.close(),
        logger,
        { late: "the worker's close did not finish in time (its step monitor's pass, its Temporal connection or its Postgres pool not answering); exiting anyway, its steps already ended" },
      );
      logger.info('worker stopped');
      // Ends the process rather than wait for its event loop to empty: anything a step left
      // running (a client's timer, a consumer kafkajs was restarting) kept a stopped worker
      // alive until it was killed.
      process.exit(0);
    });
}
