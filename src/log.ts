/**
 * Logs (pino): JSON lines for machines (cheap on the hot path, each line with its context),
 * and, on a terminal, the same lines made readable by pino-pretty, in this process (a
 * synchronous stream: no transport thread for a developer's console).
 */
import pino from 'pino';
import pretty from 'pino-pretty';
import type { Config } from './config';
import { scrubSecrets } from './redact';

export type Logger = pino.Logger;

/**
 * Fields that may hold a credential wherever they appear in a logged object (a driver's
 * options, an error's config): their values are replaced before the line is written.
 */
const REDACTED_FIELDS = ['password', 'sslpassword', 'apiKey', 'api_key', 'authorization', 'Authorization', 'sasl', 'passphrase', 'connectionString'];

export function createLogger(config: Pick<Config, 'logLevel'> & Partial<Pick<Config, 'logFormat'>>, name = 'hunt'): Logger {
  const format = config.logFormat ?? 'auto';
  const readable = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  const options: pino.LoggerOptions = {
    name,
    level: config.logLevel,
    redact: { paths: REDACTED_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]), censor: '***' },
    // The last step before a line leaves the process: any known secret or URL password that
    // reached a message or an error's text (a driver echoing its settings) is hidden too.
    hooks: { streamWrite: scrubSecrets },
  };
  if (!readable) return pino(options);
  return pino(options, pretty({ sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}

/**
 * The level a kafkajs log line deserves. kafkajs reports states it retries by itself (a
 * coordinator loading or moving, a leader election, a broker that refused a connection while
 * it restarts) at ERROR; they are normal in start-up and rebalances and lose nothing, so they
 * go to debug. If one lasts, it is not lost either: the hot path's stall signal turns
 * /readyz to 503 and logs an error naming the partitions that do not move. The state is in
 * the message or, for a broker's response ("Response GroupCoordinator(key: 10, version: 2)"),
 * in the entry's `error` field.
 */
export function kafkajsLevel(
  level: 'error' | 'warn' | 'info' | 'debug',
  message: string,
  error?: unknown,
): 'error' | 'warn' | 'info' | 'debug' {
  if (level !== 'error' && level !== 'warn') return level;
  return RETRIED_STATES.test(message) || (typeof error === 'string' && RETRIED_STATES.test(error)) ? 'debug' : level;
}

const RETRIED_STATES =
  /coordinator is (loading|not available)|not the (correct )?coordinator|leadership election|not the leader|rebalanc|Connection error|ECONNREFUSED|connection timeout|Request .* timed out|Failed to connect to seed broker|The group is rebalancing|group generation id is not valid|There is no leader/i;
