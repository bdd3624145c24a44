/**
 * Once per test run: make sure the real services run (starting the embedded stack if not),
 * then build a migrated template database that each test file clones.
 */
import pg from 'pg';
import { stackUp } from '../../infra/stack';
import { loadConfig } from '../../src/config';
import { migrate } from '../../src/store/migrate';
import { TEMPLATE_DATABASE, adminConnectionString } from './database';

export default async function setup(): Promise<void> {
  const config = loadConfig();
  await stackUp(config);
  const admin = new pg.Client({ connectionString: adminConnectionString(config.databaseUrl) });
  await admin.connect();
  // Two test runs on one Postgres (two checkouts, say) take turns rebuilding the template.
  await admin.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK_KEY]);
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
    const template = new pg.Client({ connectionString: withDatabase(config.databaseUrl, TEMPLATE_DATABASE) });
    await template.connect();
    try {
      await migrate(template);
    } finally {
      await template.end();
    }
  } finally {
    await admin.end(); // ends the session, which releases the lock
  }
}

const TEMPLATE_LOCK_KEY = 7_240_114;

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
