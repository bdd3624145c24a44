/**
 * The kafkajs client from configuration, logging through pino. Every Kafka client of the
 * project (ingest consumer and admin, DLQ producer, backfill source, demo producer, the
 * stack's health check) is made here, so SASL and TLS apply to all of them alike.
 */
import type { ConnectionOptions } from 'node:tls';
import { Kafka, logLevel, type KafkaConfig, type LogEntry, type SASLOptions } from 'kafkajs';
import type { Config } from '../config';
import type { KafkaSecurity } from '../config-security';
import { ConnectionSettingsError, explainKafkaError } from '../connection-hints';
import { kafkajsLevel, type Logger } from '../log';

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

const warnedPlainText = new WeakSet<KafkaSecurity>();

/** Told the text of every error kafkajs logs (a broker's answer to a request, a connection lost). */
export type KafkaErrorListener = (message: string) => void;

export function createKafka(config: Config, logger: Logger, clientId = config.kafka.clientId, onError?: KafkaErrorListener): Kafka {
  const kafkaLogger = logger.child({ component: 'kafkajs' });
  const { security } = config.kafka;
  if (security.sasl?.mechanism === 'plain' && !security.tls && !warnedPlainText.has(security)) {
    warnedPlainText.add(security);
    logger.warn('KAFKA_SASL_MECHANISM is plain without KAFKA_TLS: the password crosses the network in clear text');
  }
  return new Kafka({
    clientId,
    brokers: config.kafka.brokers,
    ...kafkaSecurityOptions(security),
    // kafkajs is chatty at INFO (every join and commit); keep its warnings and errors.
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }: LogEntry) => {
        const { message, ...extra } = log;
        kafkaLogger[kafkajsLevel(levels[level] ?? 'info', String(message), extra.error)](extra, message);
        if (level === logLevel.ERROR && onError) onError(String(extra.error ?? message));
      },
  });
}

/** kafkajs's `ssl` and `sasl` options for the configured security (empty: plain text). */
export function kafkaSecurityOptions(security: KafkaSecurity): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const out: Pick<KafkaConfig, 'ssl' | 'sasl'> = {};
  if (security.tls) {
    const { ca, cert, key, serverName } = security.tls;
    const ssl: ConnectionOptions = { rejectUnauthorized: true };
    if (ca) ssl.ca = [ca];
    if (cert && key) Object.assign(ssl, { cert, key });
    if (serverName) ssl.servername = serverName;
    out.ssl = ssl;
  }
  if (security.sasl) {
    const { mechanism, username, password } = security.sasl;
    out.sasl = { mechanism, username, password } as SASLOptions;
  }
  return out;
}

/** The error with what to fix in front, when a Kafka setting is the cause (see connection-hints). */
export function withKafkaHint(err: unknown, config: Pick<Config, 'kafka'>): unknown {
  const hint = explainKafkaError(err, config.kafka.security);
  return hint ? new ConnectionSettingsError(`cannot use Kafka at ${config.kafka.brokers.join(',')}: ${hint}`, { cause: err }) : err;
}

/**
 * True when kafkajs says the failure passes by itself (a broker unreachable or restarting, a
 * leader being elected): some error down its chain is marked retriable. kafkajs wraps the
 * last connection error in a non-retriable KafkaJSNumberOfRetriesExceeded once its own
 * retries are spent, hence the walk. Refusals no wait cures (authorization, a bad request)
 * are not retriable anywhere in the chain.
 */
export function isKafkaOutage(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    if ((e as { retriable?: unknown }).retriable === true) return true;
    e = (e as { cause?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;
  }
  return false;
}
