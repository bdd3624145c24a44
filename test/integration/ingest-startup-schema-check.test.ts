/**
 * hunt ingest checks the schema's version at start-up and refuses one behind or ahead of the
 * code. When the check itself fails (Postgres restarting during an upgrade window, a role
 * that may not read schema_migrations), it starts without it, as the worker does; before, it
 * said nothing, and a process on a schema behind it retried statements that cannot work.
 */
import pg from 'pg';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { checkPostgresSettings } from '../../src/ingest/service';
import { useTestDatabase } from '../helpers/database-fixture';
import { uniqueName } from '../helpers/wait';

const db = useTestDatabase();

describe('hunt ingest, its start-up check of the schema', () => {
  it('says so when it could not be made, and starts without it', async () => {
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    await checkPostgresSettings(db.pool, logger);
    expect(warnings).toEqual([]);
    // A role that may not read schema_migrations (42501); Postgres restarting would do the same.
    const role = uniqueName('no_schema_user').replace(/-/g, '_');
    await db.pool.query(`CREATE ROLE ${role}`);
    const restricted = new pg.Pool({ connectionString: db.url, options: `-c role=${role}` });
    try {
      await checkPostgresSettings(restricted, logger);
    } finally {
      await restricted.end();
      await db.pool.query(`DROP ROLE ${role}`);
    }
    expect(warnings.map((line) => JSON.parse(line).msg)).toEqual([
      "could not check the schema's version at start-up; starting without that check: grant this role SELECT on schema_migrations",
    ]);
  });
});
