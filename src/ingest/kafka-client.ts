/** The kafkajs client from configuration, logging through pino. */
import { Kafka, logLevel, type LogEntry } from 'kafkajs';
import type { Config } from '../config';
import { kafkajsLevel, type Logger } from '../log';

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

export function createKafka(config: Config, logger: Logger, clientId = config.kafka.clientId): Kafka {
  const kafkaLogger = logger.child({ component: 'kafkajs' });
  return new Kafka({
    clientId,
    brokers: config.kafka.brokers,
    // kafkajs is chatty at INFO (every join and commit); keep its warnings and errors.
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }: LogEntry) => {
        const { message, ...extra } = log;
        kafkaLogger[kafkajsLevel(levels[level] ?? 'info', String(message))](extra, message);
      },
  });
}
