/**
 * Forward-only SQL migrations: numbered files in ./migrations, applied in order, each in its
 * own transaction, under a session advisory lock so concurrent starters wait rather than race.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { nonUtf8Encoding, UTF8_REQUIRED } from './pool';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
/** An arbitrary constant shared by every process of this project. */
const MIGRATION_LOCK_KEY = 7_240_113;

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const migrations = fs
    .readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const match = /^(\d+)_([\w-]+)\.sql$/.exec(file);
      if (!match) throw new Error(`migration file ${file} must be named NNN_name.sql`);
      return { id: Number(match[1]), name: match[2] as string, sql: fs.readFileSync(path.join(dir, file), 'utf8') };
    })
    .sort((a, b) => a.id - b.id);
  migrations.forEach((m, i) => {
    if (i > 0 && migrations[i - 1]?.id === m.id) throw new Error(`two migrations share the number ${m.id}`);
  });
  return migrations;
}

/** Applies the migrations not yet recorded; returns the ones it applied. */
export async function migrate(client: pg.ClientBase, migrations = listMigrations()): Promise<Migration[]> {
  const encoding = await nonUtf8Encoding(client);
  if (encoding) throw new Error(`the database's encoding is ${encoding}, nothing migrated. ${UTF8_REQUIRED}`);
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ id: number }>('SELECT id FROM schema_migrations');
    const applied = new Set(rows.map((r) => r.id));
    const pending = migrations.filter((m) => !applied.has(m.id));
    for (const migration of pending) {
      await client.query('BEGIN');
      try {
        await client.query('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [migration.id, migration.name]);
        await client.query(migration.sql);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${migration.id}_${migration.name} failed: ${(err as Error).message}`, { cause: err });
      }
    }
    return pending;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
  }
}
