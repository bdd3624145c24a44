/**
 * Postgres that requires TLS, for real: a server of this test's own whose access rules are
 * `hostssl` only (no plain-text line at all), with password (SCRAM) authentication, and one
 * database that also wants a client certificate. The hot path runs through it with
 * DATABASE_TLS_MODE=verify-full; wrong settings stop a command with what to fix.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgres } from '../../infra/postgres';
import { loadConfig, projectRoot } from '../../src/config';
import { foldEvents } from '../../src/rules/reference';
import { createPool } from '../../src/store/pool';
import { freePort, runHunt } from '../helpers/hunt-command';
import { createTestTopics, projectionOf, startIngestProcess, waitCaughtUp } from '../helpers/ingest';
import { createTestCa, type TestCa } from '../helpers/test-ca';
import { inOrderTraffic, sendAtRate } from '../helpers/traffic';
import { uniqueName } from '../helpers/wait';

const stateDir = path.join(projectRoot, '.hunt', 'test-stacks', uniqueName('tls-pg'));
const PASSWORD = 'pg-Secret-d4T5u6';
const MTLS_DATABASE = 'hunt_mtls';

let ca: TestCa;
let postgres: EmbeddedPostgres;
let port: number;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  ca = await createTestCa(path.join(stateDir, 'ca'));
  port = await freePort();
  const config = loadConfig({ ...process.env, HUNT_STATE_DIR: stateDir, HUNT_PG_PORT: String(port), DATABASE_URL: '' });
  postgres = new EmbeddedPostgres(config, {
    tls: { certFile: ca.server.cert, keyFile: ca.server.key, caFile: ca.caFile },
    // TLS or nothing: there is no `host` line, so a plain-text connection has no rule to match.
    hba: [`hostssl ${MTLS_DATABASE} all 127.0.0.1/32 scram-sha-256 clientcert=verify-full`, 'hostssl all all 127.0.0.1/32 scram-sha-256'],
    superuserPassword: PASSWORD,
  });
  await postgres.up();
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await postgres?.down();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

/** As a deployment would set it: the URL without the password, which comes from a file. */
function postgresEnv(database: string, overrides: Record<string, string> = {}): Record<string, string> {
  const passwordFile = path.join(stateDir, 'db-password');
  fs.writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  return {
    DATABASE_URL: `postgres://hunt@127.0.0.1:${port}/${database}`,
    DATABASE_PASSWORD_FILE: passwordFile,
    DATABASE_TLS_MODE: 'verify-full',
    DATABASE_TLS_CA_FILE: ca.caFile,
    ...overrides,
  };
}

describe('Postgres with TLS required', () => {
  it('runs the hot path through it, verifying the server certificate', async () => {
    const env = postgresEnv('hunt');
    const migrated = await runHunt(['migrate'], env);
    expect(migrated.output).toMatch(/applied: 1_initial/);
    expect(migrated.code).toBe(0);

    const pool = createPool(loadConfig({ ...process.env, ...env }), 2);
    cleanups.push(() => pool.end());
    const { rows } = await pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(rows[0]?.ssl).toBe(true);

    const topics = await createTestTopics(4);
    const traffic = inOrderTraffic(4000, 7);
    const ingest = startIngestProcess(env.DATABASE_URL as string, topics, env);
    cleanups.push(() => ingest.kill('SIGKILL'));
    await ingest.ready();
    await sendAtRate(topics.events, traffic.records, 4000);
    await waitCaughtUp(pool, topics);
    expect(await projectionOf(pool)).toEqual(foldEvents(traffic.events));
    const board = await fetch(`${ingest.apiUrl}/hunts/${traffic.events[0]?.huntId}/leaderboard`);
    expect(board.status).toBe(200);
  });

  it('refuses plain text, saying to set DATABASE_TLS_MODE', async () => {
    const run = await runHunt(['migrate'], postgresEnv('hunt', { DATABASE_TLS_MODE: 'disable', DATABASE_TLS_CA_FILE: '' }));
    expect(run.code).toBe(1);
    expect(run.output).toContain('Postgres accepts only TLS connections from here: set DATABASE_TLS_MODE');
  });

  it('refuses a server certificate from a CA it was not given, saying to set DATABASE_TLS_CA_FILE', async () => {
    const run = await runHunt(['migrate'], postgresEnv('hunt', { DATABASE_TLS_CA_FILE: path.join(ca.dir, 'stranger-ca.pem') }));
    expect(run.code).toBe(1);
    expect(run.output).toContain("Postgres's TLS certificate is not signed by a trusted CA: set DATABASE_TLS_CA_FILE");
  });

  it('passes a client certificate where the server asks for one, and says what to set without it', async () => {
    const admin = createPool(loadConfig({ ...process.env, ...postgresEnv('postgres') }), 1);
    await admin.query(`CREATE DATABASE ${MTLS_DATABASE}`);
    await admin.end();
    const withoutCertificate = await runHunt(['migrate'], postgresEnv(MTLS_DATABASE));
    expect(withoutCertificate.code).toBe(1);
    expect(withoutCertificate.output).toContain('Postgres wants a client certificate: set DATABASE_TLS_CERT_FILE and DATABASE_TLS_KEY_FILE');
    const withCertificate = await runHunt(['migrate'], postgresEnv(MTLS_DATABASE, { DATABASE_TLS_CERT_FILE: ca.client.cert, DATABASE_TLS_KEY_FILE: ca.client.key }));
    expect(withCertificate.output).toMatch(/applied: 1_initial/);
  });

  it('says a wrong password was refused, without showing it', async () => {
    const wrong = 'Not-The-Password-9z';
    const run = await runHunt(['migrate'], { ...postgresEnv('hunt'), DATABASE_PASSWORD_FILE: '', DATABASE_URL: `postgres://hunt:${wrong}@127.0.0.1:${port}/hunt` });
    expect(run.code).toBe(1);
    expect(run.output).toContain('Postgres refused the password');
    expect(run.output).not.toContain(wrong);
  });
});
