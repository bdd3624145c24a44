/**
 * The security settings: secrets from `*_FILE`, TLS files, the checks across variables, and
 * that no error message ever shows a secret.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config';
import { scrubSecrets } from '../../src/redact';
import { createTestCa, type TestCa } from '../helpers/test-ca';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-config-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const at = path.join(dir, name);
  fs.writeFileSync(at, text);
  return at;
}

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const SECRET = 'Tr0ub4dor&3-very-secret';

function messageOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('secrets from files', () => {
  it('reads DATABASE_PASSWORD_FILE, KAFKA_SASL_PASSWORD_FILE and TEMPORAL_API_KEY_FILE, dropping one trailing newline', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://hunt@db.example/hunt',
      DATABASE_PASSWORD_FILE: file('db-password', `${SECRET}\n`),
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'hunt',
      KAFKA_SASL_PASSWORD_FILE: file('kafka-password', SECRET),
      KAFKA_BROKERS: 'kafka.example:9096',
      TEMPORAL_API_KEY_FILE: file('api-key', `${SECRET}\n`),
      TEMPORAL_ADDRESS: 'ns.tmprl.cloud:7233',
    });
    expect(config.postgres.password).toBe(SECRET);
    expect(config.kafka.security.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'hunt', password: SECRET });
    expect(config.temporal.security.apiKey).toBe(SECRET);
    // An API key travels over TLS unless told otherwise.
    expect(config.temporal.security.tls).toEqual({ ca: undefined, serverName: undefined });
  });

  it('reads the whole DATABASE_URL from DATABASE_URL_FILE', () => {
    const config = loadConfig({ DATABASE_URL_FILE: file('url', `postgres://hunt:${SECRET}@db.example:5432/hunt\n`) });
    expect(config.databaseUrl).toBe(`postgres://hunt:${SECRET}@db.example:5432/hunt`);
    expect(config.external.databaseUrl).toBeDefined();
  });

  it('refuses a variable given both directly and as a file, and a missing file, naming the path only', () => {
    const message = messageOf({ KAFKA_SASL_PASSWORD: SECRET, KAFKA_SASL_PASSWORD_FILE: file('p', SECRET), TEMPORAL_API_KEY_FILE: path.join(dir, 'missing') });
    expect(message).toContain('KAFKA_SASL_PASSWORD_FILE: expected either KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both');
    expect(message).toMatch(/TEMPORAL_API_KEY_FILE: expected a readable file holding TEMPORAL_API_KEY, got ".*missing \(no such file\)"/);
    expect(message).not.toContain(SECRET);
  });
});

describe('error messages never show a secret', () => {
  it('hides the password of a malformed DATABASE_URL, and of one with the wrong scheme', () => {
    for (const url of [`postgres://hunt:${SECRET}@db.example:port/hunt`, `mysql://hunt:${SECRET}@db.example/hunt`, `postgres:/hunt:${SECRET}@db/hunt`]) {
      const message = messageOf({ DATABASE_URL: url });
      expect(message).toContain('DATABASE_URL: expected');
      expect(message).not.toContain(SECRET);
      expect(message).not.toContain(encodeURIComponent(SECRET));
    }
  });

  it('hides a DATABASE_URL read from a file when it is malformed', () => {
    const message = messageOf({ DATABASE_URL_FILE: file('bad-url', `postgresql://hunt:${SECRET}@/`) });
    expect(message).not.toContain(SECRET);
  });

  it('shows a secret variable that fails its check as (hidden)', () => {
    const message = messageOf({ DATABASE_URL: `postgres://hunt:${SECRET}@db/hunt`, DATABASE_PASSWORD: SECRET });
    expect(message).toContain('DATABASE_PASSWORD: expected unset while DATABASE_URL holds a password');
    expect(message).not.toContain(SECRET);
  });
});

describe('what is scrubbed', () => {
  it('leaves a DATABASE_URL without a password shown, its password being elsewhere, and hides one with', () => {
    const address = 'postgres://hunt@db-scrub.example:5432/hunt';
    loadConfig({ DATABASE_URL: address, DATABASE_PASSWORD: 'pw-kept-apart-77' });
    // Before, the whole address showed as *** (in `hunt stack status`, in every log line quoting it).
    expect(scrubSecrets(`connecting to ${address}`)).toBe(`connecting to ${address}`);
    expect(scrubSecrets('pw-kept-apart-77')).not.toContain('pw-kept-apart-77');
    const withPassword = 'postgres://hunt:pw-in-url-88@db-scrub2.example:5432/hunt';
    loadConfig({ DATABASE_URL: withPassword });
    expect(scrubSecrets(`connecting to ${withPassword}`)).not.toContain('pw-in-url-88');
    // Malformed (one slash): it parses, with no password, but is no URL to the scrubber.
    const malformed = 'postgres:/hunt:pw-malformed-99@db-scrub3.example/hunt';
    try {
      loadConfig({ DATABASE_URL: malformed });
    } catch {
      // refused or not, what matters is that it is hidden wherever it is printed
    }
    expect(scrubSecrets(`connecting to ${malformed}`)).not.toContain('pw-malformed-99');
  });
});

describe('TLS and SASL settings', () => {
  // Certificates and keys TLS can load (openssl makes them), as the pair is checked.
  let ca: TestCa;
  beforeAll(async () => {
    ca = await createTestCa(path.join(dir, 'ca'));
  });

  it('turns Kafka TLS on with any KAFKA_TLS_* file and reads the PEM files', () => {
    const config = loadConfig({
      KAFKA_TLS_CA_FILE: file('ca.pem', PEM),
      KAFKA_TLS_CERT_FILE: ca.client.cert,
      KAFKA_TLS_KEY_FILE: ca.client.key,
      KAFKA_TLS_SERVER_NAME: 'kafka.internal',
      KAFKA_BROKERS: 'kafka.internal:9093',
    });
    expect(config.kafka.security.tls).toEqual({ ca: PEM, cert: fs.readFileSync(ca.client.cert, 'utf8'), key: fs.readFileSync(ca.client.key, 'utf8'), serverName: 'kafka.internal' });
    expect(loadConfig({ KAFKA_TLS: 'true', KAFKA_BROKERS: 'kafka.internal:9093' }).kafka.security.tls).toBeDefined();
    expect(loadConfig({}).kafka.security).toEqual({});
  });

  it('refuses security settings for the embedded Kafka or Temporal (no address given), which take none', () => {
    // Before, Kafka's start-up waited for ever on the plain-text embedded broker.
    expect(messageOf({ KAFKA_TLS: 'true' })).toContain('KAFKA_BROKERS: expected the brokers of the Kafka that the KAFKA_TLS / KAFKA_SASL_* settings are for');
    expect(messageOf({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'hunt', KAFKA_SASL_PASSWORD: SECRET })).toContain('KAFKA_BROKERS: expected');
    expect(messageOf({ TEMPORAL_API_KEY: SECRET })).toContain('TEMPORAL_ADDRESS: expected the address of the Temporal that the TEMPORAL_TLS* / TEMPORAL_API_KEY settings are for');
    expect(messageOf({ TEMPORAL_API_KEY: SECRET })).not.toContain(SECRET);
    // Turned off on purpose, nothing to refuse.
    expect(loadConfig({ KAFKA_TLS: 'false', TEMPORAL_TLS: 'false' }).kafka.security).toEqual({});
  });

  it('refuses a linger near the stall limit or past it: a healthy lane would look stalled', () => {
    expect(messageOf({ INGEST_BATCH_MODE: 'fixed', INGEST_LINGER_MS: '29900' })).toContain('INGEST_LINGER_MS: expected a linger of at most 90% of INGEST_STALL_LIMIT_MS (30000 ms)');
    expect(loadConfig({ INGEST_BATCH_MODE: 'fixed', INGEST_LINGER_MS: '20000' }).ingest.lingerMs).toBe(20_000);
    // Adaptive mode holds the linger to a fifth of the freshness target.
    expect(loadConfig({ INGEST_LINGER_MS: '45000' }).ingest.lingerMs).toBe(45_000);
    expect(messageOf({ INGEST_LINGER_MS: '45000', INGEST_FRESHNESS_TARGET_MS: '60000', INGEST_STALL_LIMIT_MS: '12000' })).toContain('INGEST_LINGER_MS: expected');
  });

  it('refuses a key of another certificate, and a certificate and key swapped, naming the file to fix and showing no key', () => {
    // Before, each connection failed as it was made, read as an outage and retried for ever.
    const mismatched = messageOf({ DATABASE_TLS_MODE: 'verify-full', DATABASE_TLS_CERT_FILE: ca.client.cert, DATABASE_TLS_KEY_FILE: ca.strangerClient.key });
    expect(mismatched).toContain(`DATABASE_TLS_KEY_FILE: expected the private key of the certificate in DATABASE_TLS_CERT_FILE, got "${ca.strangerClient.key} (key values mismatch)"`);
    const swapped = messageOf({ KAFKA_BROKERS: 'kafka.internal:9093', KAFKA_TLS_CERT_FILE: ca.client.key, KAFKA_TLS_KEY_FILE: ca.client.cert });
    expect(swapped).toContain(`KAFKA_TLS_CERT_FILE: expected a PEM file holding a client certificate, got "${ca.client.key} (no start line)"`);
    const keyIsCertificate = messageOf({ TEMPORAL_ADDRESS: 'temporal.internal:7233', TEMPORAL_TLS_CERT_FILE: ca.client.cert, TEMPORAL_TLS_KEY_FILE: ca.client.cert });
    expect(keyIsCertificate).toContain('TEMPORAL_TLS_KEY_FILE: expected the private key of the certificate in TEMPORAL_TLS_CERT_FILE');
    for (const message of [mismatched, swapped, keyIsCertificate]) expect(message).not.toContain('PRIVATE KEY');
    expect(loadConfig({ TEMPORAL_ADDRESS: 'temporal.internal:7233', TEMPORAL_TLS_CERT_FILE: ca.client.cert, TEMPORAL_TLS_KEY_FILE: ca.client.key }).temporal.security.tls?.key).toContain('PRIVATE KEY');
  });

  it('refuses a certificate without its key, a file that is not PEM, and SASL without a user', () => {
    expect(messageOf({ TEMPORAL_TLS_CERT_FILE: file('c.pem', PEM) })).toContain('TEMPORAL_TLS_KEY_FILE: expected set together with TEMPORAL_TLS_CERT_FILE');
    expect(messageOf({ DATABASE_TLS_MODE: 'verify-full', DATABASE_TLS_CA_FILE: file('not-pem', 'hello') })).toContain('DATABASE_TLS_CA_FILE: expected a PEM file');
    expect(messageOf({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_PASSWORD: SECRET })).toContain('KAFKA_SASL_USERNAME: expected a user name');
    expect(messageOf({ KAFKA_SASL_USERNAME: 'hunt' })).toContain('KAFKA_SASL_MECHANISM: expected plain, scram-sha-256 or scram-sha-512');
    expect(messageOf({ KAFKA_TLS: 'false', KAFKA_TLS_CA_FILE: file('ca2.pem', PEM) })).toContain('KAFKA_TLS: expected true');
  });

  it("takes Postgres's TLS mode from DATABASE_TLS_MODE, else the URL's sslmode, and refuses file parameters in the URL", () => {
    expect(loadConfig({}).postgres.tls.mode).toBe('disable');
    expect(loadConfig({ DATABASE_URL: 'postgres://h@db/x?sslmode=verify-full' }).postgres.tls.mode).toBe('verify-full');
    expect(loadConfig({ DATABASE_URL: 'postgres://h@db/x', DATABASE_TLS_MODE: 'require' }).postgres.tls.mode).toBe('require');
    expect(messageOf({ DATABASE_URL: 'postgres://h@db/x?sslmode=require', DATABASE_TLS_MODE: 'verify-full' })).toContain('DATABASE_TLS_MODE: expected the same mode');
    expect(messageOf({ DATABASE_URL: 'postgres://h@db/x?sslrootcert=/ca.pem' })).toContain('set DATABASE_TLS_CA_FILE instead');
    expect(messageOf({ DATABASE_URL: 'postgres://h@db/x?sslmode=prefer' })).toContain('sslmode disable, require, verify-ca or verify-full');
  });

  it('refuses DATABASE_URL parameters it would otherwise drop, ?ssl=true first of all (it would connect in plain text)', () => {
    expect(messageOf({ DATABASE_URL: 'postgres://h@db/x?ssl=true' })).toContain('DATABASE_URL: expected no ssl parameter: TLS is set by DATABASE_TLS_MODE');
    expect(messageOf({ DATABASE_URL: 'postgres://h@db/x?sslmode=verify-full&channel_binding=require' })).toContain('expected no channel_binding parameter');
    const message = messageOf({ DATABASE_URL: 'postgres://h@db/x?password=s3cret-value' });
    expect(message).toContain('DATABASE_URL: expected only the parameters host, application_name, options and sslmode');
    expect(message).not.toContain('s3cret-value');
    expect(loadConfig({ DATABASE_URL: 'postgres://h@db/x?application_name=hunt&options=-c%20statement_timeout%3D0&sslmode=disable' }).postgres.tls.mode).toBe('disable');
  });

  it('refuses a DATABASE_URL parameter given twice, which libpq reads as its last and the URL as its first', () => {
    const message = messageOf({ DATABASE_URL: 'postgres://h@db/x?sslmode=disable&sslmode=verify-full' });
    expect(message).toContain('DATABASE_URL: expected the parameter sslmode once');
    expect(message).not.toContain('verify-full');
    expect(messageOf({ DATABASE_URL: 'postgres://h@db/x?host=a&host=b' })).toContain('expected the parameter host once');
  });

  it('binds the read API and the worker metrics to 127.0.0.1 unless told otherwise', () => {
    const config = loadConfig({});
    expect(config.api.bindAddress).toBe('127.0.0.1');
    expect(config.worker.metricsBindAddress).toBe('127.0.0.1');
    expect(loadConfig({ API_BIND_ADDRESS: '0.0.0.0' }).api.bindAddress).toBe('0.0.0.0');
    expect(messageOf({ API_BIND_ADDRESS: 'everywhere' })).toContain('API_BIND_ADDRESS: expected an IP address');
  });
});
