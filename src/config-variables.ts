/**
 * The table of environment variables: each one's schema (which also gives its default) and
 * what an error message says is expected. config.ts reads the environment through it; the
 * security settings (config-security.ts) are built from the parsed values.
 * Keep docs/configuration.md in step with this table.
 */
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { TOPIC_NAME_PATTERN } from './constants';

/** The repository root, so default folders do not depend on the caller's cwd. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();
const nonEmpty = z.string().trim().min(1);

const postgresUrl = z
  .string()
  .trim()
  .refine((v) => /^postgres(ql)?:\/\/.+/.test(v) && URL.canParse(v), 'a postgres:// or postgresql:// URL');

const flag = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no']))
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const filePath = nonEmpty;
const milliseconds = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const ipAddress = z.string().trim().refine((v) => isIP(v) !== 0, 'an IP address');

const brokerList = z
  .string()
  .trim()
  .transform((v) => v.split(',').map((b) => b.trim()).filter(Boolean))
  .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'host:port')).min(1, 'at least one host:port'));

const hostPort = z.string().trim().regex(/^[^\s:]+:\d{1,5}$/, 'host:port');

const topicName = z.string().trim().regex(TOPIC_NAME_PATTERN, 'a Kafka topic name ([A-Za-z0-9._-], 1-249 chars)');

/** Topic names, or prefixes ending in `*` (`archive.*`): what a Kafka-range backfill may read. */
const topicPatternList = z
  .string()
  .trim()
  .transform((v) => v.split(',').map((t) => t.trim()).filter(Boolean))
  .pipe(z.array(z.string().refine((t) => TOPIC_NAME_PATTERN.test(t.endsWith('*') ? t.slice(0, -1) : t), 'a topic name or a prefix ending in *')).min(1, 'at least one topic'));

const durationUnitMs: Record<string, number> = { ms: 1, s: 1000, second: 1000, seconds: 1000, m: 60_000, minute: 60_000, minutes: 60_000, h: 3_600_000, hour: 3_600_000, hours: 3_600_000 };

/**
 * A Schedule's interval, kept as the string the Temporal client parses (with the `ms` package,
 * which allows spaces but no tabs before the unit). Temporal's server refuses an interval under
 * 1 s ("interval is too small", naming no setting) after other schedules were already updated,
 * and drops a fraction of a second, so only whole seconds within [min, max] pass here.
 */
const scheduleInterval = (minMs: number, maxMs: number) =>
  z
    .string()
    .trim()
    .refine((v) => {
      const match = /^(\d+) *(ms|s|m|h|seconds?|minutes?|hours?)$/.exec(v);
      const millis = match ? Number(match[1]) * durationUnitMs[match[2]!]! : NaN;
      return millis >= minMs && millis <= maxMs && millis % 1000 === 0;
    });

const monthNames = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];
const weekdayNames = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/**
 * One cron field as Temporal's server reads it (service/worker/scheduler/calendar.go): a list
 * of `*`, `a`, `a-b`, each optionally `/step`; months may be named by 3+ letters of their name
 * (JAN, March), weekdays by 2+ letters (MON, Tu), case-insensitive. Checked here because the
 * server's refusal names neither the setting nor the field.
 */
function cronFieldValid(field: string, min: number, max: number, names: string[]): boolean {
  const value = (s: string, least: number): number | undefined => {
    const named = s.length >= (names === monthNames ? 3 : 2) ? names.findIndex((n) => n.startsWith(s.toLowerCase())) : -1;
    const n = named >= 0 ? named + (names === monthNames ? 1 : 0) : /^\d+$/.test(s) ? Number(s) : NaN;
    return n >= least && n <= max ? n : undefined;
  };
  return field.split(',').every((part) => {
    const [range, step, ...extra] = part.split('/');
    // The server reads a step as Go's Atoi does (a sign and leading zeros allowed), at least 1.
    if (extra.length > 0 || (step !== undefined && !(/^\+?\d+$/.test(step) && Number(step) >= 1))) return false;
    if (range === '*') return true;
    const [start, end, ...more] = range!.split('-');
    const first = value(start!, min);
    return more.length === 0 && first !== undefined && (end === undefined || value(end, first) !== undefined);
  });
}

/** The five fields of DATA_QUALITY_CRON: minute, hour, day of month, month, weekday (0 and 7: Sunday). */
const cronFields: [number, number, string[]][] = [[0, 59, []], [0, 23, []], [1, 31, []], [1, 12, monthNames], [0, 7, weekdayNames]];

const cronExpression = z
  .string()
  .trim()
  .refine((v) => {
    const fields = v.split(/\s+/);
    return fields.length === 5 && fields.every((f, i) => cronFieldValid(f, ...cronFields[i]!));
  });

/** Each entry: the environment variable, its schema, and what is expected of it. */
export const variables = {
  DATABASE_URL: [postgresUrl.optional(), 'a postgres:// URL of an existing database (unset: the embedded one)'],
  DATABASE_URL_FILE: [filePath.optional(), 'a file holding DATABASE_URL'],
  DATABASE_PASSWORD: [z.string().optional(), 'the password of the DATABASE_URL user'],
  DATABASE_PASSWORD_FILE: [filePath.optional(), 'a file holding DATABASE_PASSWORD'],
  DATABASE_TLS_MODE: [z.enum(['disable', 'require', 'verify-ca', 'verify-full']).optional(), 'disable, require, verify-ca or verify-full'],
  DATABASE_TLS_CA_FILE: [filePath.optional(), 'a PEM file of the CA certificates that sign the server certificate'],
  DATABASE_TLS_CERT_FILE: [filePath.optional(), 'a PEM file of the client certificate'],
  DATABASE_TLS_KEY_FILE: [filePath.optional(), "a PEM file of the client certificate's private key"],
  KAFKA_BROKERS: [brokerList.optional(), 'a comma-separated list of host:port (unset: the embedded broker)'],
  KAFKA_SASL_MECHANISM: [z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(), 'plain, scram-sha-256 or scram-sha-512'],
  KAFKA_SASL_USERNAME: [nonEmpty.optional(), 'a SASL user name'],
  KAFKA_SASL_PASSWORD: [z.string().min(1).optional(), 'the SASL password'],
  KAFKA_SASL_PASSWORD_FILE: [filePath.optional(), 'a file holding KAFKA_SASL_PASSWORD'],
  KAFKA_TLS: [flag.optional(), 'true or false'],
  KAFKA_TLS_CA_FILE: [filePath.optional(), "a PEM file of the CA certificates that sign the brokers' certificates"],
  KAFKA_TLS_CERT_FILE: [filePath.optional(), 'a PEM file of the client certificate'],
  KAFKA_TLS_KEY_FILE: [filePath.optional(), "a PEM file of the client certificate's private key"],
  KAFKA_TLS_SERVER_NAME: [nonEmpty.optional(), "the name the brokers' certificates carry"],
  TEMPORAL_ADDRESS: [hostPort.optional(), 'host:port of a Temporal frontend (unset: the embedded dev server)'],
  TEMPORAL_TLS: [flag.optional(), 'true or false'],
  TEMPORAL_TLS_CA_FILE: [filePath.optional(), "a PEM file of the CA certificates that sign the server's certificate"],
  TEMPORAL_TLS_CERT_FILE: [filePath.optional(), 'a PEM file of the client certificate'],
  TEMPORAL_TLS_KEY_FILE: [filePath.optional(), "a PEM file of the client certificate's private key"],
  TEMPORAL_TLS_SERVER_NAME: [nonEmpty.optional(), "the name the server's certificate carries"],
  TEMPORAL_API_KEY: [z.string().min(1).optional(), 'a Temporal API key'],
  TEMPORAL_API_KEY_FILE: [filePath.optional(), 'a file holding TEMPORAL_API_KEY'],
  TEMPORAL_NAMESPACE: [nonEmpty.default('default'), 'a Temporal namespace name'],
  TEMPORAL_TASK_QUEUE: [nonEmpty.default('hunt-batch'), 'a task queue name'],
  KAFKA_CLIENT_ID: [nonEmpty.default('treasure-hunt-engine'), 'a non-empty client id'],
  KAFKA_TOPIC_EVENTS: [topicName.default('hunt.events'), 'a Kafka topic name ([A-Za-z0-9._-], 1-249 chars)'],
  KAFKA_TOPIC_DLQ: [topicName.default('hunt.events.dlq'), 'a Kafka topic name ([A-Za-z0-9._-], 1-249 chars)'],
  API_PORT: [port.default(8080), 'a TCP port (1-65535)'],
  // Unset: /healthz, /readyz and /metrics only on API_PORT, where the public's connections can use up API_MAX_CONNECTIONS.
  API_OPS_PORT: [port.optional(), 'a TCP port (1-65535) other than API_PORT, for /healthz, /readyz and /metrics alone (unset: none)'],
  API_BIND_ADDRESS: [ipAddress.default('127.0.0.1'), 'an IP address to listen on (0.0.0.0: every IPv4 interface)'],
  API_HEADERS_TIMEOUT_MS: [milliseconds(1000, 120_000).default(10_000), 'a whole number of milliseconds, 1000-120000'],
  API_REQUEST_TIMEOUT_MS: [milliseconds(1000, 600_000).default(30_000), 'a whole number of milliseconds, 1000-600000'],
  // Not 0: node reads 0 as no limit, and idle connections would stay until API_MAX_CONNECTIONS is used up.
  API_KEEP_ALIVE_TIMEOUT_MS: [milliseconds(1, 600_000).default(5000), 'a whole number of milliseconds, 1-600000'],
  API_MAX_REQUESTS_PER_SOCKET: [z.coerce.number().int().min(0).max(1_000_000).default(1000), 'a whole number, 0 (no limit)-1000000'],
  API_MAX_CONNECTIONS: [positiveInt.max(1_000_000).default(1024), 'a whole number of connections, 1-1000000'],
  API_DB_POOL_SIZE: [positiveInt.max(100).default(4), 'a whole number of connections, 1-100'],
  API_STATEMENT_TIMEOUT_MS: [milliseconds(10, 600_000).default(2000), 'a whole number of milliseconds, 10-600000'],
  API_DB_WAIT_MS: [milliseconds(10, 60_000).default(1000), 'a whole number of milliseconds, 10-60000'],
  API_LEADERBOARD_CACHE_MS: [milliseconds(0, 60_000).default(100), 'a whole number of milliseconds, 0-60000'],
  // Default: three quarters of API_MAX_CONNECTIONS (768 of 1024), so lowering that alone keeps room for plain reads.
  API_MAX_STREAMS: [positiveInt.max(1_000_000).optional(), 'a whole number of live streams, 1-1000000, below API_MAX_CONNECTIONS'],
  // The contract promises an idle stream a comment line at least every 15 s; timers run late under load.
  API_STREAM_HEARTBEAT_MS: [milliseconds(100, 14_000).default(10_000), 'a whole number of milliseconds, 100-14000 (the contract promises a comment at least every 15 s)'],
  // At most 5 minutes: HuntStoreMetricsStale fires when the figures are over 300 s old for 5 minutes,
  // which a slower refresh (past about 10 minutes) reached on every healthy cycle.
  API_METRICS_REFRESH_MS: [milliseconds(100, 300_000).default(15_000), 'a whole number of milliseconds, 100-300000 (HuntStoreMetricsStale fires when the figures are over 5 minutes old)'],
  LOG_LEVEL: [z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), 'one of fatal, error, warn, info, debug, trace, silent'],
  LOG_FORMAT: [z.enum(['auto', 'json', 'pretty']).default('auto'), 'auto (readable on a terminal, JSON elsewhere), json or pretty'],
  INGEST_GROUP_ID: [nonEmpty.default('hunt-ingest'), 'a Kafka consumer group id'],
  INGEST_BATCH_MODE: [z.enum(['fixed', 'adaptive']).default('adaptive'), 'fixed or adaptive'],
  INGEST_MAX_BATCH_EVENTS: [positiveInt.max(100_000).default(5000), 'a whole number of events, 1-100000'],
  INGEST_LINGER_MS: [z.coerce.number().int().min(0).max(60_000).default(1), 'a whole number of milliseconds, 0-60000'],
  INGEST_FRESHNESS_TARGET_MS: [positiveInt.max(60_000).default(50), 'a whole number of milliseconds, 1-60000'],
  // At most 256 MiB: the protocol's fields are 32-bit (past 2 GiB the consumer crashed without naming the variable), and a fetch is held in memory.
  KAFKA_FETCH_MAX_BYTES: [positiveInt.max(256 * 1024 * 1024).default(2 * 1024 * 1024), 'a whole number of bytes, 1-268435456 (256 MiB)'],
  KAFKA_PARTITION_FETCH_MAX_BYTES: [positiveInt.max(256 * 1024 * 1024).default(512 * 1024), 'a whole number of bytes, 1-268435456 (256 MiB)'],
  INGEST_SESSION_TIMEOUT_MS: [z.coerce.number().int().min(6000).max(300_000).default(30_000), 'a whole number of milliseconds, 6000-300000'],
  INGEST_PARTITIONS_CONCURRENCY: [positiveInt.max(64).default(4), 'a whole number 1-64'],
  INGEST_COMMIT_LANES: [positiveInt.max(16).default(2), 'a whole number 1-16'],
  INGEST_STALL_LIMIT_MS: [z.coerce.number().int().min(1000).max(3_600_000).default(30_000), 'a whole number of milliseconds, 1000-3600000'],
  INGEST_START_FROM: [z.enum(['earliest', 'latest']).default('earliest'), 'earliest or latest'],
  INGEST_ON_RETENTION_GAP: [z.enum(['continue', 'stop']).default('continue'), 'continue or stop'],
  SLO_FRESHNESS_TARGET_MS: [positiveInt.max(60_000).default(50), 'a whole number of milliseconds, 1-60000'],
  SLO_OBJECTIVE: [z.coerce.number().gt(0).lt(1).default(0.999), 'a fraction between 0 and 1 such as 0.999 (for 99.9%)'],
  BACKFILL_TOPICS: [topicPatternList.optional(), 'a comma-separated list of Kafka topics a backfill may read, each a name or a prefix ending in * (default: KAFKA_TOPIC_EVENTS only)'],
  BACKFILL_IMPORT_DIR: [nonEmpty.optional(), 'a folder on the worker\'s machine that backfill files must be in (default: <HUNT_STATE_DIR>/imports)'],
  // At most a day: the rollups and reconcile's repairs would lag by more, and the shortest
  // JOB_RECORDS_KEEP_DAYS (a week) counts on runs well within it.
  ROLLUP_FLUSH_EVERY: [scheduleInterval(1000, 86_400_000).default('1m'), 'a whole number of seconds, minutes or hours from 1 s to 24 hours, such as 30s, 1m or 5 minutes (Temporal refuses a schedule interval under 1 s)'],
  RECONCILE_EVERY: [scheduleInterval(1000, 86_400_000).default('5m'), 'a whole number of seconds, minutes or hours from 1 s to 24 hours, such as 1m or 5 minutes (Temporal refuses a schedule interval under 1 s)'],
  DATA_QUALITY_CRON: [cronExpression.default('0 3 * * *'), 'a five-field cron expression (UTC) such as 0 3 * * *: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, weekday 0-7 (0 and 7 are Sunday) or SUN-SAT; each field *, a value, a range a-b, a list a,b, or a step */n, a/n or a-b/n'],
  WORKER_MAX_CONCURRENT_ACTIVITIES: [positiveInt.max(100).default(8), 'a whole number of job steps one worker runs at once, 1-100'],
  WORKER_METRICS_PORT: [port.optional(), 'a TCP port for the worker\'s Prometheus metrics (unset: off)'],
  WORKER_METRICS_BIND_ADDRESS: [ipAddress.default('127.0.0.1'), "an IP address for the worker's metrics to listen on"],
  // At least a week: the latest data-quality report and reconcile run must outlive a late or paused Schedule.
  JOB_RECORDS_KEEP_DAYS: [positiveInt.min(7).max(3650).default(30), 'a whole number of days, 7-3650, to keep past runs\' records (reconcile runs and drift, data-quality reports, job progress)'],
  HUNT_STATE_DIR: [nonEmpty.default(path.join(projectRoot, '.hunt')), 'a folder for the embedded stack\'s data, logs and pid files'],
  HUNT_CACHE_DIR: [nonEmpty.default(path.join(os.homedir(), '.cache', 'treasure-hunt')), 'a folder for downloaded and built binaries'],
  HUNT_PG_PORT: [port.default(15432), 'a TCP port (1-65535)'],
  HUNT_PG_BIN_DIR: [nonEmpty.optional(), "the folder holding Postgres's server binaries (postgres, initdb)"],
  HUNT_KAFKA_PORT: [port.default(19092), 'a TCP port (1-65535)'],
  HUNT_KAFKA_CONTROLLER_PORT: [port.default(19093), 'a TCP port (1-65535)'],
  HUNT_KAFKA_HEAP: [z.string().trim().regex(/^\d+[mMgG]$/).default('768m'), 'a JVM heap size such as 512m or 1g'],
  HUNT_TEMPORAL_PORT: [port.default(7233), 'a TCP port (1-65535)'],
  HUNT_TEMPORAL_UI_PORT: [port.default(8233), 'a TCP port (1-65535)'],
  HUNT_STACK_TIMEOUT_MS: [positiveInt.default(120_000), 'a positive whole number of milliseconds'],
} as const satisfies Record<string, readonly [z.ZodType, string]>;

type Variables = typeof variables;
export type RawConfig = { [K in keyof Variables]: z.output<Variables[K][0]> };
