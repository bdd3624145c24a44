/**
 * Kafka with SASL over TLS, for real: a broker of this test's own with a SASL_SSL listener
 * (a self-signed CA made here, client certificates required, SCRAM users created by the
 * broker's StorageTool), and the whole hot path through it: `hunt produce` (the demo
 * producer and its admin), `hunt ingest` (consumer, admin, DLQ producer) committing to
 * Postgres, and the read API answering. A wrong password, a missing client certificate or
 * CA each stop the process with what to fix, and the password is never shown.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, projectRoot } from '../../src/config';
import { createKafka } from '../../src/pipeline/kafka-client';
import { createLogger } from '../../src/log';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freePort, runHunt } from '../helpers/hunt-command';
import { endOffsets, readTopic, startIngestProcess, waitCaughtUp, type IngestProcess, type TestTopics } from '../helpers/ingest';
import { startSaslKafka, type SaslKafka, type SaslUser } from '../helpers/sasl-kafka';
import { createTestCa, type TestCa } from '../helpers/test-ca';
import { uniqueName } from '../helpers/wait';

const dir = path.join(projectRoot, '.hunt', 'test-stacks', uniqueName('sasl-kafka'));
const USERS: SaslUser[] = [
  { mechanism: 'scram-sha-512', username: 'hunt-512', password: 'scram512-Secret-a7Q' },
  { mechanism: 'scram-sha-256', username: 'hunt-256', password: 'scram256-Secret-b8R' },
  { mechanism: 'plain', username: 'hunt-plain', password: 'plain-Secret-c9S' },
];
const [SCRAM_512] = USERS as [SaslUser, ...SaslUser[]];

let ca: TestCa;
let broker: SaslKafka;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  ca = await createTestCa(path.join(dir, 'ca'));
  broker = await startSaslKafka(path.join(dir, 'kafka'), ca, USERS, { broker: await freePort(), controller: await freePort() }, true);
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await broker?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The settings a deployment would give: the password as a file, the CA, the certificate's name. */
function kafkaEnv(user: SaslUser, password = user.password): Record<string, string> {
  const passwordFile = path.join(dir, `${user.username}-${password.length}.password`);
  fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  return {
    KAFKA_BROKERS: broker.brokers,
    KAFKA_SASL_MECHANISM: user.mechanism,
    KAFKA_SASL_USERNAME: user.username,
    KAFKA_SASL_PASSWORD_FILE: passwordFile,
    KAFKA_TLS_CA_FILE: ca.caFile,
    // The listener also wants a client certificate (ssl.client.auth=required).
    KAFKA_TLS_CERT_FILE: ca.client.cert,
    KAFKA_TLS_KEY_FILE: ca.client.key,
    // The broker is dialled as 127.0.0.1; its certificate is checked for the name localhost.
    KAFKA_TLS_SERVER_NAME: 'localhost',
  };
}

function secureKafka(user: SaslUser): Kafka {
  return createKafka(loadConfig({ ...process.env, ...kafkaEnv(user) }), createLogger({ logLevel: 'silent' }), 'hunt-tests');
}

describe('Kafka over SASL_SSL', () => {
  it('runs the whole hot path through it: hunt produce, hunt ingest, DLQ, Postgres, read API', async () => {
    const db: TestDatabase = await createTestDatabase();
    cleanups.push(() => db.dispose());
    const base = uniqueName('sasl');
    const topics: TestTopics = { events: `${base}.events`, dlq: `${base}.dlq`, groupId: `${base}-group` };
    const env = { ...kafkaEnv(SCRAM_512), KAFKA_TOPIC_EVENTS: topics.events, KAFKA_TOPIC_DLQ: topics.dlq };
    const ingest: IngestProcess = startIngestProcess(db.url, topics, env);
    cleanups.push(() => ingest.kill('SIGKILL'));
    await ingest.ready();

    const produced = await runHunt(['produce', '--count', '3000', '--rate', '3000', '--hunts', '2', '--players', '40', '--invalid', '0.02', '--duplicates', '0.02'], env);
    expect(produced.output).toContain(`sent 3000 records to ${topics.events}`);
    expect(produced.code).toBe(0);

    const kafka = secureKafka(SCRAM_512);
    await waitCaughtUp(db.pool, topics, 60_000, kafka);
    const { rows } = await db.pool.query<{ events: number; quarantined: number }>(
      'SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM quarantine) AS quarantined',
    );
    const { events, quarantined } = rows[0] as { events: number; quarantined: number };
    expect(quarantined).toBeGreaterThan(0);
    // Every record is an event or a reject; duplicates are the difference.
    expect(events + quarantined).toBeLessThanOrEqual(3000);
    expect(events + quarantined).toBeGreaterThan(2800);
    // Each record read back is accounted for: its event stored, or its bytes quarantined.
    const stored = new Set((await db.pool.query<{ event_id: string }>('SELECT event_id FROM events')).rows.map((r) => r.event_id));
    const rejected = new Set((await db.pool.query<{ value: string }>("SELECT encode(record_value, 'hex') AS value FROM quarantine")).rows.map((r) => r.value));
    const unaccounted = (await readTopic(topics.events, 3000, 30_000, kafka)).filter((record) => {
      const value = record.value ?? Buffer.alloc(0);
      if (rejected.has(value.toString('hex'))) return false;
      let eventId: unknown;
      try {
        eventId = (JSON.parse(value.toString('utf8')) as { eventId?: unknown }).eventId;
      } catch {
        return true; // not JSON, and not quarantined
      }
      return typeof eventId !== 'string' || !stored.has(eventId);
    });
    expect(unaccounted).toEqual([]);
    expect(await endOffsets(topics.dlq, kafka)).toBe(quarantined);
    const dlq = await readTopic(topics.dlq, quarantined, 30_000, kafka);
    expect(dlq.every((r) => r.headers['error.reason'])).toBe(true);

    const board = await fetch(`${ingest.apiUrl}/hunts/hunt-0/leaderboard?limit=5`);
    expect(board.status).toBe(200);
    expect(((await board.json()) as { entries: unknown[] }).entries).toHaveLength(5);
    expect(fs.readFileSync(ingest.logFile, 'utf8')).not.toContain(SCRAM_512.password);
  });

  it.each(USERS.map((u) => [u.mechanism, u] as const))('lets a %s user in', async (_mechanism, user) => {
    const admin = secureKafka(user).admin();
    await admin.connect();
    try {
      expect((await admin.describeCluster()).brokers).toHaveLength(1);
    } finally {
      await admin.disconnect();
    }
  });

  it('stops hunt ingest on a wrong password with what to fix, never showing the password', async () => {
    const wrong = 'Wrong-Password-x1Y2';
    const db = await createTestDatabase(); // migrated: start-up checks the schema before Kafka
    cleanups.push(() => db.dispose());
    const run = await runHunt(['ingest'], { ...kafkaEnv(SCRAM_512, wrong), DATABASE_URL: db.url, API_PORT: String(await freePort()), INGEST_GROUP_ID: uniqueName('wrong') }, 60_000);
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(1);
    expect(run.output).toContain('Kafka refused the SASL credentials (mechanism scram-sha-512, user hunt-512)');
    expect(run.output).toContain('KAFKA_SASL_PASSWORD');
    expect(run.output).not.toContain(wrong);
  });

  it('tells a client without a client certificate to set KAFKA_TLS_CERT_FILE', async () => {
    const { KAFKA_TLS_CERT_FILE: _cert, KAFKA_TLS_KEY_FILE: _key, ...withoutCertificate } = kafkaEnv(SCRAM_512);
    const run = await runHunt(['stack', 'status'], withoutCertificate, 60_000);
    expect(run.output).toContain('the Kafka listener wants a client certificate it accepts: set KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE');
  });

  it('tells a client without the CA to set KAFKA_TLS_CA_FILE', async () => {
    const { KAFKA_TLS_CA_FILE: _ca, ...withoutCa } = kafkaEnv(SCRAM_512);
    const run = await runHunt(['stack', 'status'], { ...withoutCa, KAFKA_TLS: 'true' }, 60_000);
    expect(run.output).toContain("Kafka's TLS certificate is not signed by a trusted CA: set KAFKA_TLS_CA_FILE");
  });
});
