/**
 * A database that is not UTF8 is refused at start-up, by `hunt migrate` and `hunt ingest`,
 * with what to do. Events, names and reject details are Unicode text: in a LATIN1 database a
 * character it cannot hold (the `…` a shortened reject detail ends with) made the quarantine
 * insert fail with 22P05 on every attempt, and the hot path retried that micro-batch for ever.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { migrate } from '../../src/store/migrate';
import { adminConnectionString } from '../helpers/database';
import { freePort, runHunt } from '../helpers/hunt-command';
import { createTestTopics } from '../helpers/ingest';

const config = loadConfig();
const name = `hunt_latin1_${crypto.randomBytes(4).toString('hex')}`;
const url = new URL(config.databaseUrl);
url.pathname = `/${name}`;

async function asAdmin(sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminConnectionString(config.databaseUrl) });
  await admin.connect();
  await admin.query(sql).finally(() => admin.end());
}

beforeAll(() => asAdmin(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'`));
afterAll(() => asAdmin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));

describe('a database that is not UTF8', () => {
  it('is not migrated', async () => {
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      await expect(migrate(client)).rejects.toThrow(/the database's encoding is LATIN1, nothing migrated\. .*needs a UTF8 database/);
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`);
      expect(rows[0].n).toBe(0);
    } finally {
      await client.end();
    }
  });

  it('stops hunt ingest at start-up, saying what to do', async () => {
    const topics = await createTestTopics(1);
    const run = await runHunt(['ingest'], {
      DATABASE_URL: url.toString(),
      KAFKA_TOPIC_EVENTS: topics.events,
      KAFKA_TOPIC_DLQ: topics.dlq,
      API_PORT: String(await freePort()), // free now: a random one collided with a connection's port
    });
    expect(run.timedOut).toBe(false);
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/the database's encoding is LATIN1\. Treasure Hunt Engine needs a UTF8 database .*ENCODING 'UTF8'/);
  });
});
