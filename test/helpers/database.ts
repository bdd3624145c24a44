/**
 * One fresh database per test file, cloned from the migrated template: isolated, fast, and
 * kept (not dropped) when a test failed so it can be inspected.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { loadConfig } from '../../src/config';
import { migrate } from '../../src/store/migrate';
import { createPool } from '../../src/store/pool';

export const TEMPLATE_DATABASE = 'hunt_test_template';

export function adminConnectionString(url: string): string {
  const parsed = new URL(url);
  parsed.pathname = '/postgres';
  return parsed.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  /** Drops the database unless `keep` (pass true when the file had failures). */
  dispose(keep?: boolean): Promise<void>;
}

/**
 * A fresh, migrated database. `icuLocale`: created with that ICU locale as its default
 * collation instead of the stack's C (as a managed Postgres often is), then migrated.
 */
export async function createTestDatabase(options: { icuLocale?: string } = {}): Promise<TestDatabase> {
  const config = loadConfig();
  const name = `hunt_t_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminConnectionString(config.databaseUrl) });
  await admin.connect();
  try {
    // A template with another collation cannot be copied to a new one: template0 is empty.
    if (options.icuLocale) await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE ${admin.escapeLiteral(options.icuLocale)} LOCALE 'C'`);
    else await admin.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE}`);
  } finally {
    await admin.end();
  }
  const parsed = new URL(config.databaseUrl);
  parsed.pathname = `/${name}`;
  const url = parsed.toString();
  const pool = createPool({ databaseUrl: url }, 10);
  if (options.icuLocale) {
    const client = await pool.connect();
    await migrate(client).finally(() => client.release());
  }
  return {
    name,
    url,
    pool,
    async dispose(keep = false) {
      await pool.end();
      if (keep) {
        console.warn(`kept test database ${name} for inspection`);
        return;
      }
      const cleanup = new pg.Client({ connectionString: adminConnectionString(config.databaseUrl) });
      await cleanup.connect();
      try {
        await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await cleanup.end();
      }
    },
  };
}
