/**
 * How to reach Postgres: the pg client settings from DATABASE_URL plus the password and TLS
 * settings of the configuration (DATABASE_PASSWORD(_FILE), DATABASE_TLS_*).
 *
 * The URL is taken apart here rather than handed to pg as a connection string: pg lets a
 * connection string's fields override explicit settings (an empty password included) and
 * reads `sslmode=require` as "verify the certificate and the host name". The TLS modes
 * here mean what they mean for libpq and psql.
 */
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import type { PostgresSecurity } from '../config-security';
import { decodeOrKeep } from '../redact';

export interface PostgresTarget {
  databaseUrl: string;
  /** Absent (a bare URL, as tests and benchmarks pass): the URL alone, as pg reads it. */
  postgres?: PostgresSecurity;
}

/**
 * TCP keep-alive on every connection: a server that vanished without a reset (a failover, a
 * dropped NAT entry) is probed from 10 s of silence on, instead of never (pg leaves
 * keep-alive off); the kernel's probe interval and count decide when the connection fails
 * (about 11 minutes with Linux's defaults), and the pool then replaces it.
 */
const TCP_KEEPALIVE = { keepAlive: true, keepAliveInitialDelayMillis: 10_000 } as const;

export function pgClientConfig(target: PostgresTarget): pg.ClientConfig {
  if (!target.postgres) return { connectionString: target.databaseUrl, ...TCP_KEEPALIVE };
  const url = new URL(target.databaseUrl);
  const params = url.searchParams;
  const host = params.get('host') ?? decodeOrKeep(url.hostname).replace(/^\[(.*)\]$/, '$1');
  return {
    ...TCP_KEEPALIVE,
    host,
    port: url.port ? Number(url.port) : 5432,
    user: url.username ? decodeOrKeep(url.username) : undefined,
    password: target.postgres.password ?? (url.password ? decodeOrKeep(url.password) : undefined),
    database: url.pathname.length > 1 ? decodeOrKeep(url.pathname.slice(1)) : undefined,
    application_name: params.get('application_name') ?? undefined,
    options: params.get('options') ?? undefined,
    ssl: tlsOptions(target.postgres.tls),
  };
}

/**
 * disable: plain text. require: encrypted; the certificate is checked against the CA only
 * when DATABASE_TLS_CA_FILE is given (as libpq does with a root certificate file).
 * verify-ca: the certificate must chain to the CA. verify-full: and name the host.
 */
function tlsOptions(tls: PostgresSecurity['tls']): false | ConnectionOptions {
  if (tls.mode === 'disable') return false;
  const options: ConnectionOptions = {};
  if (tls.ca) options.ca = tls.ca;
  if (tls.cert && tls.key) Object.assign(options, { cert: tls.cert, key: tls.key });
  const verifyChain = tls.mode !== 'require' || tls.ca !== undefined;
  options.rejectUnauthorized = verifyChain;
  // verify-full: pg passes the host on to tls.connect, which checks the certificate names it.
  if (tls.mode !== 'verify-full') options.checkServerIdentity = () => undefined;
  return options;
}
