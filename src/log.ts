/**
 * Logs (pino): JSON lines for machines (cheap on the hot path, each line with its context),
 * and, on a terminal, the same lines made readable by pino-pretty, in this process (a
 * synchronous stream: no transport thread for a developer's console).
 */
import pino from 'pino';
import pretty from 'pino-pretty';
import type { Config } from './config';

export type Logger = pino.Logger;

export function createLogger(config: Pick<Config, 'logLevel'> & Partial<Pick<Config, 'logFormat'>>, name = 'hunt'): Logger {
  const format = config.logFormat ?? 'auto';
  const readable = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!readable) return pino({ name, level: config.logLevel });
  return pino({ name, level: config.logLevel }, pretty({ sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}

/**
 * The level a kafkajs log line deserves. kafkajs reports states it retries by itself (a
 * coordinator loading or moving, a leader election, a broker that refused a connection while
 * it restarts) at ERROR; they are normal in start-up and rebalances and lose nothing, so they
 * go to debug. If one lasts, it is not lost either: the hot path's stall signal turns
 * /readyz to 503 and logs an error naming the partitions that do not move.
 */
export function kafkajsLevel(level: 'error' | 'warn' | 'info' | 'debug', message: string): 'error' | 'warn' | 'info' | 'debug' {
  if (level !== 'error' && level !== 'warn') return level;
  return RETRIED_STATES.test(message) ? 'debug' : level;
}

const RETRIED_STATES =
  /coordinator is (loading|not available)|not the (correct )?coordinator|leadership election|not the leader|rebalanc|Connection error|ECONNREFUSED|connection timeout|Request .* timed out|Failed to connect to seed broker|The group is rebalancing|There is no leader/i;
