/**
 * Forward-only SQL migrations: numbered files in ./migrations, applied in order, each in its
 * own transaction, under a session advisory lock so concurrent starters wait rather than race.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { backoffMs, sleep } from '../backoff';
import { nonUtf8Encoding, UTF8_REQUIRED } from './pool';
import { SqlState, sqlStateOf } from './sql-state';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
/** An arbitrary constant shared by every process of this project. */
export const MIGRATION_LOCK_KEY = 7_240_113;

export interface Migration {
  id: number;
  name: string;
  sql: string;
  /**
   * The file says `-- older-versions: compatible`: processes of versions that do not know the
   * migration may run on a database that has it (it only adds what they do not read, or what
   * they ignore). Recorded in schema_migrations, so a rollback, or an older process restarting
   * during a rolling deploy, is not refused for it.
   */
  compatibleWithOlder?: boolean;
}

const COMPATIBLE_MARK = /^--\s*older-versions:\s*compatible\s*$/m;

export function listMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const migrations = fs
    .readdirSync(dir)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const match = /^(\d+)_([\w-]+)\.sql$/.exec(file);
      if (!match) throw new Error(`migration file ${file} must be named NNN_name.sql`);
      const sql = fs.readFileSync(path.join(dir, file), 'utf8');
      return { id: Number(match[1]), name: match[2] as string, sql, compatibleWithOlder: COMPATIBLE_MARK.test(sql) };
    })
    .sort((a, b) => a.id - b.id);
  migrations.forEach((m, i) => {
    if (i > 0 && migrations[i - 1]?.id === m.id) throw new Error(`two migrations share the number ${m.id}`);
  });
  return migrations;
}

export interface MigrateOptions {
  /**
   * How long one migration waits for a lock. Its ALTER TABLE queues behind any transaction
   * reading the table (a dataQuality check may run for 30 minutes), and every commit of the
   * hot path queues behind the ALTER: the stream stopped for as long as the reader ran.
   */
  lockTimeoutMs?: number;
  /** Tries per migration before giving up, with a pause between them in which the hot path runs. */
  attempts?: number;
  /** Told of each try that timed out on a lock: what waited (`migration 017_name`), and the try. */
  onLockWait?: (step: string, attempt: number) => void;
}

interface AppliedMigration {
  id: number;
  name: string;
  /** Absent in a schema_migrations made before the column was. */
  compatible_with_older?: boolean;
}

/**
 * Says so when the database has migrations `migrations` does not know, other than those
 * marked compatible with older versions: a newer version migrated it.
 */
function newerThan(migrations: readonly Migration[], applied: readonly AppliedMigration[]): string | undefined {
  const known = new Set(migrations.map((m) => m.id));
  const unknown = applied.filter((r) => !known.has(r.id) && r.compatible_with_older !== true);
  if (unknown.length === 0) return undefined;
  return `the database has migrations this version does not know (${unknown.map((r) => `${r.id}_${r.name}`).join(', ')}): it was migrated by a newer version of Treasure Hunt Engine; run that version`;
}

/** The migrations recorded in the database, in order; undefined when it has no schema_migrations table. */
async function appliedMigrations(db: pg.Pool | pg.ClientBase): Promise<AppliedMigration[] | undefined> {
  const { rows: found } = await db.query<{ exists: boolean }>(`SELECT to_regclass('schema_migrations') IS NOT NULL AS exists`);
  if (!found[0]?.exists) return undefined;
  // Every column: compatible_with_older exists only once a version that records it has migrated.
  return (await db.query<AppliedMigration>('SELECT * FROM schema_migrations ORDER BY id')).rows;
}

/**
 * Why this version cannot run on the database (migrations it needs not applied, or ones it
 * does not know), checked by `hunt ingest` and `hunt worker` at start-up: on a schema behind
 * the code, the hot path's statements fail (42703) on every retry, which reads as an outage.
 */
export async function schemaMismatch(db: pg.Pool | pg.ClientBase, migrations = listMigrations()): Promise<string | undefined> {
  const rows = await appliedMigrations(db);
  if (!rows) return 'the database has no schema yet: run `hunt migrate`';
  const applied = new Set(rows.map((r) => r.id));
  const missing = migrations.filter((m) => !applied.has(m.id));
  if (missing.length > 0) return `the database lacks migrations ${missing.map((m) => `${m.id}_${m.name}`).join(', ')}: run \`hunt migrate\` with this version first`;
  return newerThan(migrations, rows);
}

/** Applies the migrations not yet recorded; returns the ones it applied. */
export async function migrate(client: pg.ClientBase, migrations = listMigrations(), options: MigrateOptions = {}): Promise<Migration[]> {
  const { lockTimeoutMs = 3000, attempts = 20, onLockWait } = options;
  const encoding = await nonUtf8Encoding(client);
  if (encoding) throw new Error(`the database's encoding is ${encoding}, nothing migrated. ${UTF8_REQUIRED}`);
  await takeMigrationLock(client, onLockWait);
  let failed = false;
  try {
    // Only when missing: Postgres checks the right to CREATE before IF NOT EXISTS, so a role
    // without it could not even learn that nothing was pending.
    let rows = await appliedMigrations(client);
    if (!rows) {
      await client.query(`CREATE TABLE schema_migrations (
        id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
        compatible_with_older boolean NOT NULL DEFAULT false)`);
      rows = [];
    }
    const newer = newerThan(migrations, rows);
    if (newer) throw new Error(`${newer}, nothing was migrated`);
    const applied = new Set(rows.map((r) => r.id));
    const pending = migrations.filter((m) => !applied.has(m.id));
    const bounds = { lockTimeoutMs, attempts, onLockWait };
    // Only with migrations to apply (which need the owner's rights anyway), and only when it
    // is missing: ALTER TABLE takes the table's exclusive lock even when the column exists, and
    // every start-up check of ingest and the workers reads the table.
    if (pending.length > 0 && !rows.some((r) => 'compatible_with_older' in r) && !(await hasCompatibilityColumn(client))) {
      await inTransactionWithLockTimeout(client, 'schema_migrations.compatible_with_older', bounds, () =>
        client.query('ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS compatible_with_older boolean NOT NULL DEFAULT false'),
      );
    }
    for (const migration of pending) {
      await inTransactionWithLockTimeout(client, `migration ${migration.id}_${migration.name}`, bounds, async () => {
        await client.query('INSERT INTO schema_migrations (id, name, compatible_with_older) VALUES ($1, $2, $3)', [migration.id, migration.name, migration.compatibleWithOlder === true]);
        await client.query(migration.sql);
      });
    }
    return pending;
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    // After a failure the connection may be gone: its own error (which migration, why) must
    // not give way to the unlock's, and a session that ended holds no lock anyway.
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch((err: unknown) => {
      if (!failed) throw err;
    });
  }
}

/** Between tries of the migration lock, and between the waits said. */
const MIGRATION_LOCK_POLL_MS = 1000;
const MIGRATION_LOCK_SAY_EVERY = 10;

/**
 * The migration lock, tried every second, saying every ten who holds it: taken with a plain
 * pg_advisory_lock, a migrator waiting behind another that froze (a paused VM, a suspended
 * laptop) waited in silence, and `hunt start` with it.
 */
async function takeMigrationLock(client: pg.ClientBase, onLockWait: MigrateOptions['onLockWait']): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const { rows } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [MIGRATION_LOCK_KEY]);
    if (rows[0]?.got) return;
    if (attempt % MIGRATION_LOCK_SAY_EVERY === 1) {
      const holder = await client.query<{ pid: number; application_name: string }>(
        `SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
          WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.objid = $1 LIMIT 1`,
        [MIGRATION_LOCK_KEY],
      );
      const who = holder.rows[0] ? `session pid ${holder.rows[0].pid} (${holder.rows[0].application_name || 'no application_name'})` : 'another session';
      onLockWait?.(`the migration lock, which ${who} holds (another hunt migrate or start, or one frozen mid-migration)`, attempt);
    }
    await new Promise((resolve) => setTimeout(resolve, MIGRATION_LOCK_POLL_MS));
  }
}

/** Whether schema_migrations has the column (an empty table's SELECT * does not say). */
async function hasCompatibilityColumn(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT 1 FROM pg_attribute WHERE attrelid = 'schema_migrations'::regclass AND attname = 'compatible_with_older' AND NOT attisdropped`,
  );
  return rows.length > 0;
}

/**
 * `work` in a transaction whose statements wait at most lockTimeoutMs for a lock: one that
 * waits longer is rolled back and tried again after a pause in which the hot path runs,
 * `attempts` times in all, then fails naming `step` and the cause.
 */
async function inTransactionWithLockTimeout(
  client: pg.ClientBase,
  step: string,
  bounds: Required<Pick<MigrateOptions, 'lockTimeoutMs' | 'attempts'>> & Pick<MigrateOptions, 'onLockWait'>,
  work: () => Promise<unknown>,
): Promise<void> {
  const { lockTimeoutMs, attempts, onLockWait } = bounds;
  for (let attempt = 1; ; attempt++) {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
      // A migration may read every event (011, 020): a statement or transaction timeout that a
      // role or database sets by default (managed Postgres often does) failed it on every try.
      // (idle_in_transaction_session_timeout stays: it ends a migrator frozen mid-migration.)
      await client.query(`SELECT set_config('statement_timeout', '0', true)`);
      await client.query(`SELECT set_config('transaction_timeout', '0', true) WHERE current_setting('server_version_num')::int >= 170000`);
      await work();
      await client.query('COMMIT');
      return;
    } catch (err) {
      // A session that died (ended by Postgres, a network cut) cannot roll back: its own error
      // says which migration failed and why, the ROLLBACK's would not.
      await client.query('ROLLBACK').catch(() => undefined);
      // A deadlock is a wait too: a flush that holds the watermark row, then wants a table
      // the migration has locked (020 locks them in the other order), fails one of the two.
      const deadlock = sqlStateOf(err) === SqlState.deadlockDetected;
      const lockWait = deadlock || sqlStateOf(err) === SqlState.lockNotAvailable;
      if (lockWait && attempt < attempts) {
        onLockWait?.(step, attempt);
        await sleep(backoffMs(attempt - 1, 500, 10_000));
        continue;
      }
      const why = deadlock
        ? `it deadlocked with another session on its last try of ${attempts} (a job locking the same tables in the other order, a rollupFlush say: pause the Schedules while migrating)`
        : lockWait
        ? `its locks were held by other sessions through ${attempts} tries of ${lockTimeoutMs} ms (a long transaction on the table: see pg_stat_activity; pause the Schedules while migrating)`
        : (err as Error).message;
      throw new Error(`${step} failed: ${why}`, { cause: err });
    }
  }
}
