/**
 * No secret in any output: every `hunt` command, run against services that refuse the
 * credentials (a Postgres with password authentication, a SASL_SSL Kafka, a Temporal door
 * that checks an API key), and run with a malformed DATABASE_URL holding a password, prints
 * neither the passwords nor the key, raw or URL-encoded, and ends by itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgres } from '../../infra/postgres';
import { loadConfig, projectRoot } from '../../src/config';
import { freePort, runHunt, type HuntRun } from '../helpers/hunt-command';
import { startSaslKafka, type SaslKafka } from '../helpers/sasl-kafka';
import { createTestCa, type TestCa } from '../helpers/test-ca';
import { startTemporalTlsProxy, type TlsProxy } from '../helpers/tls-proxy';
import { uniqueName } from '../helpers/wait';

const dir = path.join(projectRoot, '.hunt', 'test-stacks', uniqueName('no-secrets'));
// Characters that URL-encoding changes, so both forms are checked.
const SECRETS = {
  postgres: 'pg/Leak+Check:9@x',
  kafka: 'kafka-Leak-Check-7q',
  temporal: 'temporal-Leak-Check-8r',
  malformed: 'malformed-Leak-Check-6p',
};

/** Every command and subcommand, as run here; the test below checks the list is complete. */
const COMMANDS: string[][] = [
  ['start', '--no-demo', '--duration', '5'],
  ['stack', 'up'],
  ['stack', 'down'],
  ['stack', 'status'],
  ['stack', 'logs'],
  ['migrate'],
  ['ingest'],
  ['produce', '--count', '10'],
  ['schemas', '--out', path.join(dir, 'schemas')],
  ['worker'],
  ['schedules', 'apply'],
  ['schedules', 'list'],
  ['backfill', '--file', path.join(dir, 'nothing.ndjson')],
  ['reprocess'],
  ['rollup'],
  ['jobs'],
  ['reconcile'],
  ['dq', 'run'],
  ['dq', 'report'],
  ['dlq', 'list'],
  ['dlq', 'replay'],
  ['slo'],
];

let ca: TestCa;
let postgres: EmbeddedPostgres;
let pgPort: number;
let kafka: SaslKafka;
let proxy: TlsProxy;

beforeAll(async () => {
  ca = await createTestCa(path.join(dir, 'ca'));
  pgPort = await freePort();
  const config = loadConfig({ ...process.env, HUNT_STATE_DIR: path.join(dir, 'pg'), HUNT_PG_PORT: String(pgPort), DATABASE_URL: '' });
  postgres = new EmbeddedPostgres(config, { hba: ['host all all 127.0.0.1/32 scram-sha-256'], superuserPassword: 'the-right-one' });
  kafka = await startSaslKafka(path.join(dir, 'kafka'), ca, [{ mechanism: 'scram-sha-512', username: 'hunt', password: 'the-right-one' }], {
    broker: await freePort(),
    controller: await freePort(),
  });
  proxy = await startTemporalTlsProxy({
    dir: path.join(dir, 'haproxy'),
    ca,
    target: loadConfig().temporal.address,
    ports: { mtls: await freePort(), apiKey: await freePort() },
    apiKey: 'the-right-one',
  });
  await postgres.up();
});
afterAll(async () => {
  await proxy?.stop();
  await kafka?.stop();
  await postgres?.down();
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Every service external and refusing: an empty state folder of its own, so no command can
 * reach (or stop) the embedded stack the other tests use.
 */
function badCredentials(): Record<string, string> {
  return {
    HUNT_STATE_DIR: path.join(dir, 'state'),
    DATABASE_URL: `postgres://hunt:${encodeURIComponent(SECRETS.postgres)}@127.0.0.1:${pgPort}/hunt`,
    KAFKA_BROKERS: kafka.brokers,
    KAFKA_SASL_MECHANISM: 'scram-sha-512',
    KAFKA_SASL_USERNAME: 'hunt',
    KAFKA_SASL_PASSWORD: SECRETS.kafka,
    KAFKA_TLS_CA_FILE: ca.caFile,
    KAFKA_TLS_SERVER_NAME: 'localhost',
    TEMPORAL_ADDRESS: proxy.apiKeyAddress,
    TEMPORAL_TLS_CA_FILE: ca.caFile,
    TEMPORAL_TLS_SERVER_NAME: 'localhost',
    TEMPORAL_API_KEY: SECRETS.temporal,
    TEMPORAL_TASK_QUEUE: uniqueName('no-secrets'),
    LOG_LEVEL: 'debug',
  };
}

function malformedUrl(): Record<string, string> {
  return { ...badCredentials(), DATABASE_URL: `postgres://hunt:${SECRETS.malformed}@127.0.0.1:port/hunt` };
}

function expectNoSecret(command: string[], run: HuntRun) {
  for (const secret of Object.values(SECRETS)) {
    for (const form of new Set([secret, encodeURIComponent(secret)])) {
      expect(run.output, `hunt ${command.join(' ')} printed a secret:\n${run.output}`).not.toContain(form);
    }
  }
}

/** Runs every command, a few at a time (each is a Node process of its own). */
async function runAll(env: () => Record<string, string>): Promise<{ command: string[]; run: HuntRun }[]> {
  const results: { command: string[]; run: HuntRun }[] = [];
  const queue = [...COMMANDS];
  const runNext = async (): Promise<void> => {
    const command = queue.shift();
    if (!command) return;
    results.push({ command, run: await runHunt(command, { ...env(), API_PORT: String(await freePort()), WORKER_METRICS_PORT: String(await freePort()) }, 60_000) });
    return runNext();
  };
  await Promise.all([runNext(), runNext(), runNext()]);
  return results;
}

describe('no secret in any output', () => {
  it('lists every hunt command', () => {
    const sources = fs.readdirSync(path.join(projectRoot, 'src/cli')).map((f) => fs.readFileSync(path.join(projectRoot, 'src/cli', f), 'utf8'));
    const declared = sources.flatMap((text) => [...text.matchAll(/\.command\('([a-z-]+)'\)/g)].map((m) => m[1] as string));
    const covered = new Set(COMMANDS.flat());
    expect(declared.filter((name) => !covered.has(name))).toEqual([]);
  });

  it('when every service refuses the credentials', async () => {
    const results = await runAll(badCredentials);
    for (const { command, run } of results) {
      expectNoSecret(command, run);
      expect(run.timedOut, `hunt ${command.join(' ')} did not end:\n${run.output}`).toBe(false);
    }
    // They did meet the refusals, and said so.
    const all = results.map((r) => r.run.output).join('\n');
    expect(all).toContain('Postgres refused the password');
    expect(all).toContain('Kafka refused the SASL credentials');
    expect(all).toContain('Temporal refused the credentials');
  });

  it('when DATABASE_URL is malformed and holds a password', async () => {
    const results = await runAll(malformedUrl);
    for (const { command, run } of results) {
      expectNoSecret(command, run);
      expect(run.timedOut, `hunt ${command.join(' ')} did not end:\n${run.output}`).toBe(false);
    }
    const migrate = results.find((r) => r.command[0] === 'migrate')?.run;
    expect(migrate?.code).toBe(78);
    expect(migrate?.output).toContain('DATABASE_URL: expected a postgres:// URL');
  });
});
