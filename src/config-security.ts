/**
 * The security sections of the configuration: how to authenticate to and encrypt the
 * connections to Kafka (SASL, TLS), Postgres (password, TLS) and Temporal (mTLS, API key).
 * Built by src/config.ts from its parsed variables; checks that need several variables at
 * once (a certificate without its key, a SASL mechanism without a user) live here.
 */
import tls from 'node:tls';
import type { RawConfig } from './config-variables';
import { readPemFile, type ConfigProblem } from './config-files';
import { registerPrivateKey } from './redact';

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

/** TLS material for a client: PEM text, read from the configured files at start-up. */
export interface ClientTls {
  /** CA certificates to trust instead of the system's. */
  ca?: string;
  /** Client certificate and key, for servers that ask for one (mTLS). */
  cert?: string;
  key?: string;
  /** The name the server's certificate must carry, when it is not the host dialled. */
  serverName?: string;
}

export interface KafkaSecurity {
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
  /** Set: connect with TLS. */
  tls?: ClientTls;
}

export type PostgresTlsMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

export interface PostgresSecurity {
  /** From DATABASE_PASSWORD(_FILE), for a DATABASE_URL that holds none. */
  password?: string;
  tls: { mode: PostgresTlsMode } & Omit<ClientTls, 'serverName'>;
}

export interface TemporalSecurity {
  /** Set: connect with TLS (with a client certificate: mTLS). */
  tls?: ClientTls;
  /** Sent as `Authorization: Bearer <key>` (Temporal Cloud API keys). */
  apiKey?: string;
}

/** A private key read: kept out of every output from here on (redact.ts), as passwords are. */
function privateKey(pem: string | undefined): string | undefined {
  if (pem !== undefined) registerPrivateKey(pem);
  return pem;
}

/** A certificate and key pair from two variables: both or neither. */
function certificatePair(
  prefix: string,
  certFile: string | undefined,
  keyFile: string | undefined,
  problems: ConfigProblem[],
): Pick<ClientTls, 'cert' | 'key'> {
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const missing = certFile === undefined ? `${prefix}_CERT_FILE` : `${prefix}_KEY_FILE`;
    problems.push({ variable: missing, expected: `set together with ${certFile === undefined ? `${prefix}_KEY_FILE` : `${prefix}_CERT_FILE`} (a client certificate needs its key)`, got: undefined });
    return {};
  }
  if (certFile === undefined || keyFile === undefined) return {};
  const pair = {
    cert: readPemFile(`${prefix}_CERT_FILE`, certFile, 'a client certificate', problems),
    key: privateKey(readPemFile(`${prefix}_KEY_FILE`, keyFile, "the client certificate's private key", problems)),
  };
  if (pair.cert !== undefined && pair.key !== undefined) checkPair(prefix, { certFile, keyFile }, { cert: pair.cert, key: pair.key }, problems);
  return pair;
}

/**
 * The certificate and key as TLS will load them: a key of another pair (a certificate renewed
 * and its old key left), or the two files swapped, failed every connection as it was made,
 * which reads as an outage (Postgres and Kafka unreachable, retried for ever) rather than a
 * setting to fix. OpenSSL's reason names no key material.
 */
function checkPair(prefix: string, files: { certFile: string; keyFile: string }, pair: { cert: string; key: string }, problems: ConfigProblem[]): void {
  const refusal = (options: tls.SecureContextOptions): string | undefined => {
    try {
      tls.createSecureContext(options);
      return undefined;
    } catch (err) {
      return (err as { reason?: unknown }).reason?.toString() ?? (err as Error).message;
    }
  };
  const certRefused = refusal({ cert: pair.cert });
  if (certRefused !== undefined) {
    problems.push({ variable: `${prefix}_CERT_FILE`, expected: 'a PEM file holding a client certificate', got: `${files.certFile} (${certRefused})` });
    return;
  }
  const keyRefused = refusal({ cert: pair.cert, key: pair.key });
  if (keyRefused !== undefined) {
    problems.push({ variable: `${prefix}_KEY_FILE`, expected: `the private key of the certificate in ${prefix}_CERT_FILE`, got: `${files.keyFile} (${keyRefused})` });
  }
}

function clientTls(prefix: 'KAFKA_TLS' | 'TEMPORAL_TLS', v: RawConfig, problems: ConfigProblem[]): ClientTls {
  const files = prefix === 'KAFKA_TLS'
    ? { ca: v.KAFKA_TLS_CA_FILE, cert: v.KAFKA_TLS_CERT_FILE, key: v.KAFKA_TLS_KEY_FILE, serverName: v.KAFKA_TLS_SERVER_NAME }
    : { ca: v.TEMPORAL_TLS_CA_FILE, cert: v.TEMPORAL_TLS_CERT_FILE, key: v.TEMPORAL_TLS_KEY_FILE, serverName: v.TEMPORAL_TLS_SERVER_NAME };
  return {
    ca: files.ca === undefined ? undefined : readPemFile(`${prefix}_CA_FILE`, files.ca, 'CA certificates', problems),
    ...certificatePair(prefix, files.cert, files.key, problems),
    serverName: files.serverName,
  };
}

/** TLS is on when asked for, or when any TLS setting is given and it was not turned off. */
function tlsWanted(flag: boolean | undefined, settings: (string | undefined)[]): boolean {
  return flag ?? settings.some((s) => s !== undefined);
}

export function kafkaSecurity(v: RawConfig, problems: ConfigProblem[]): KafkaSecurity {
  const out: KafkaSecurity = {};
  const mechanism = v.KAFKA_SASL_MECHANISM;
  if (mechanism) {
    if (!v.KAFKA_SASL_USERNAME) problems.push({ variable: 'KAFKA_SASL_USERNAME', expected: `a user name (KAFKA_SASL_MECHANISM is ${mechanism})`, got: undefined });
    if (!v.KAFKA_SASL_PASSWORD) problems.push({ variable: 'KAFKA_SASL_PASSWORD', expected: `a password, or KAFKA_SASL_PASSWORD_FILE (KAFKA_SASL_MECHANISM is ${mechanism})`, got: undefined });
    if (v.KAFKA_SASL_USERNAME && v.KAFKA_SASL_PASSWORD) out.sasl = { mechanism, username: v.KAFKA_SASL_USERNAME, password: v.KAFKA_SASL_PASSWORD };
  } else if (v.KAFKA_SASL_USERNAME || v.KAFKA_SASL_PASSWORD) {
    problems.push({ variable: 'KAFKA_SASL_MECHANISM', expected: 'plain, scram-sha-256 or scram-sha-512 (a SASL user or password is set)', got: undefined });
  }
  const tlsSettings = [v.KAFKA_TLS_CA_FILE, v.KAFKA_TLS_CERT_FILE, v.KAFKA_TLS_KEY_FILE, v.KAFKA_TLS_SERVER_NAME];
  if (tlsWanted(v.KAFKA_TLS, tlsSettings)) out.tls = clientTls('KAFKA_TLS', v, problems);
  else if (tlsSettings.some((s) => s !== undefined)) {
    problems.push({ variable: 'KAFKA_TLS', expected: 'true, or no KAFKA_TLS_* file settings (they are set while TLS is off)', got: 'false' });
  }
  return out;
}

/**
 * sslmode and friends in DATABASE_URL: pg reads them its own way (`require` checks the
 * certificate like `verify-full`), so they are not passed on. `sslmode` stands in for
 * DATABASE_TLS_MODE when that is unset; files must come through the DATABASE_TLS_* variables.
 */
function tlsModeFromUrl(url: string | undefined, problems: ConfigProblem[]): PostgresTlsMode | undefined {
  if (!url) return undefined;
  const params = new URL(url).searchParams;
  for (const [parameter, variable] of [['sslrootcert', 'DATABASE_TLS_CA_FILE'], ['sslcert', 'DATABASE_TLS_CERT_FILE'], ['sslkey', 'DATABASE_TLS_KEY_FILE']] as const) {
    if (params.has(parameter)) problems.push({ variable: 'DATABASE_URL', expected: `no ${parameter} parameter: set ${variable} instead`, got: `...?${parameter}=...` });
  }
  const mode = params.get('sslmode');
  if (mode === null) return undefined;
  if (mode === 'disable' || mode === 'require' || mode === 'verify-ca' || mode === 'verify-full') return mode;
  problems.push({ variable: 'DATABASE_URL', expected: 'sslmode disable, require, verify-ca or verify-full (or set DATABASE_TLS_MODE)', got: `...?sslmode=${mode}` });
  return undefined;
}

/** The DATABASE_URL parameters the connection uses (src/store/pg-connection.ts); sslmode is read above. */
const URL_PARAMETERS = new Set(['host', 'application_name', 'options', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey']);
/** Parameters other clients read as TLS settings: dropped silently, they would leave the connection in plain text. */
const TLS_LIKE_PARAMETERS = new Set(['ssl', 'channel_binding', 'sslnegotiation', 'sslpassword', 'sslcrl', 'gssencmode', 'requiressl']);

/**
 * Any other parameter would be dropped without a word: `?ssl=true` (node-postgres's own
 * flag, in many hosts' guides) would connect in plain text. Only names are shown, never values.
 */
function unsupportedUrlParameters(url: string | undefined, problems: ConfigProblem[]): void {
  if (!url) return;
  const params = new URL(url).searchParams;
  for (const name of new Set(params.keys())) {
    // libpq keeps the last of a repeated parameter, URL's get() the first: a template's
    // `sslmode=disable` with `&sslmode=verify-full` appended connected in plain text here.
    if (params.getAll(name).length > 1) problems.push({ variable: 'DATABASE_URL', expected: `the parameter ${name} once`, got: `...?${name}=...&${name}=...` });
    if (URL_PARAMETERS.has(name)) continue;
    const expected = TLS_LIKE_PARAMETERS.has(name)
      ? `no ${name} parameter: TLS is set by DATABASE_TLS_MODE (disable, require, verify-ca, verify-full) or sslmode`
      : `only the parameters host, application_name, options and sslmode (the user and password go before the @, or in DATABASE_PASSWORD)`;
    problems.push({ variable: 'DATABASE_URL', expected, got: `...?${name}=...` });
  }
}

export function postgresSecurity(v: RawConfig, problems: ConfigProblem[]): PostgresSecurity {
  unsupportedUrlParameters(v.DATABASE_URL, problems);
  const urlMode = tlsModeFromUrl(v.DATABASE_URL, problems);
  if (urlMode && v.DATABASE_TLS_MODE && urlMode !== v.DATABASE_TLS_MODE) {
    problems.push({ variable: 'DATABASE_TLS_MODE', expected: `the same mode as DATABASE_URL's sslmode (${urlMode}), or no sslmode in the URL`, got: v.DATABASE_TLS_MODE });
  }
  if (v.DATABASE_PASSWORD !== undefined && v.DATABASE_URL && new URL(v.DATABASE_URL).password) {
    problems.push({ variable: 'DATABASE_PASSWORD', expected: 'unset while DATABASE_URL holds a password (keep the password in one place)', got: '(hidden)' });
  }
  const mode = v.DATABASE_TLS_MODE ?? urlMode ?? 'disable';
  const files = [v.DATABASE_TLS_CA_FILE, v.DATABASE_TLS_CERT_FILE, v.DATABASE_TLS_KEY_FILE];
  if (mode === 'disable' && files.some((f) => f !== undefined)) {
    problems.push({ variable: 'DATABASE_TLS_MODE', expected: 'require, verify-ca or verify-full (DATABASE_TLS_* files are set)', got: 'disable' });
  }
  return {
    password: v.DATABASE_PASSWORD,
    tls: {
      mode,
      ca: v.DATABASE_TLS_CA_FILE === undefined ? undefined : readPemFile('DATABASE_TLS_CA_FILE', v.DATABASE_TLS_CA_FILE, 'CA certificates', problems),
      ...certificatePair('DATABASE_TLS', v.DATABASE_TLS_CERT_FILE, v.DATABASE_TLS_KEY_FILE, problems),
    },
  };
}

export function temporalSecurity(v: RawConfig, problems: ConfigProblem[]): TemporalSecurity {
  const tlsSettings = [v.TEMPORAL_TLS_CA_FILE, v.TEMPORAL_TLS_CERT_FILE, v.TEMPORAL_TLS_KEY_FILE, v.TEMPORAL_TLS_SERVER_NAME];
  const out: TemporalSecurity = { apiKey: v.TEMPORAL_API_KEY };
  // An API key travels as a bearer token: it goes over TLS unless TLS is turned off on purpose.
  if (tlsWanted(v.TEMPORAL_TLS, [...tlsSettings, v.TEMPORAL_API_KEY])) out.tls = clientTls('TEMPORAL_TLS', v, problems);
  else if (tlsSettings.some((s) => s !== undefined)) {
    problems.push({ variable: 'TEMPORAL_TLS', expected: 'true, or no TEMPORAL_TLS_* settings (they are set while TLS is off)', got: 'false' });
  }
  return out;
}
