/** What activities are built from: real services in production, the same in tests. */
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import type { Config } from '../config';
import type { Logger } from '../log';

export interface ActivityDeps {
  pool: pg.Pool;
  kafka: Kafka;
  config: Config;
  logger: Logger;
}
