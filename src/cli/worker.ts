/** `hunt worker`: the Temporal worker of the batch plane, until SIGTERM/SIGINT. */
import type { Command } from 'commander';
import { loadConfig } from '../config';
import { createLogger } from '../log';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run the batch-plane Temporal worker (task queue from TEMPORAL_TASK_QUEUE, default hunt-batch)')
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config, 'worker');
      const { createWorkerService, installRuntime } = await import('../worker/service');
      installRuntime(config.worker);
      const service = await createWorkerService(config, logger);
      logger.info({ taskQueue: config.temporal.taskQueue, metricsPort: config.worker.metricsPort }, 'worker running');
      // The SDK stops the worker gracefully on SIGINT/SIGTERM: running activities get the grace time.
      await service.run();
      await service.close();
      logger.info('worker stopped');
    });
}
