/** Structured JSON logs (pino): cheap on the hot path, and each line carries its context. */
import pino from 'pino';
import type { Config } from './config';

export type Logger = pino.Logger;

export function createLogger(config: Pick<Config, 'logLevel'>, name = 'hunt'): Logger {
  return pino({ name, level: config.logLevel });
}
