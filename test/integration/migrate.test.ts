/**
 * `hunt migrate` against what an upgrade meets: a long transaction reading the table a
 * migration alters (the hot path's commits queue behind a waiting ALTER TABLE, so it must not
 * wait long), and a database a newer version migrated (refused, unless each migration it does
 * not know is marked compatible with older versions).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { listMigrations, migrate, MIGRATION_LOCK_KEY, schemaMismatch, type Migration } from '../../src/store/migrate';
import { freePort, runHunt } from '../helpers/hunt-command';
import { createTestTopics } from '../helpers/ingest';
import { useTestDatabase } from '../helpers/database-fixture';
import { waitFor } from '../helpers/wait';

// One database for the file, in order: the first test leaves 9001_test_add_column applied,
// a migration the others' (the code's own) list does not know.
const db = useTestDatabase();
const addColumn: Migration = { id: 9001, name: 'test_add_column', sql: 'ALTER TABLE events ADD COLUMN test_note text' };

async function withClient<T>(use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

describe('hunt migrate', () => {
  it('names the migration and the cause when its session is ended under it, not the rollback\'s words', async () => {
    const slow: Migration = { id: 9010, name: 'test_slow', sql: 'SELECT pg_sleep(30)' };
    const client = new pg.Client({ connectionString: db.url });
    client.on('error', () => undefined); // ended under it, as the pool's clients are listened to
    await client.connect();
    const migrating = migrate(client, [...listMigrations(), slow]).finally(() => client.end().catch(() => undefined));
    migrating.catch(() => undefined);
    const pid = await waitFor('the migration running', async () => {
      const { rows } = await db.pool.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(30)'`);
      return rows[0]?.pid;
    }, { timeoutMs: 10_000, intervalMs: 100 });
    await db.pool.query('SELECT pg_terminate_backend($1)', [pid]);
    // Before: "Connection terminated unexpectedly" (the ROLLBACK's), naming nothing.
    await expect(migrating).rejects.toThrow(/^migration 9010_test_slow failed: terminating connection due to administrator command/);
  });

  it('says who holds the migration lock while it waits for it, and goes on once it is free', async () => {
    // Another migrator, frozen mid-migration (a paused VM): before, a plain pg_advisory_lock
    // waited in silence, and `hunt start` with it.
    const holder = new pg.Client({ connectionString: db.url, application_name: 'frozen-migrator' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      const waits: string[] = [];
      const migrating = withClient((client) => migrate(client, listMigrations(), { onLockWait: (step) => waits.push(step) }));
      await waitFor('the wait said', () => waits.length > 0, { timeoutMs: 10_000 });
      expect(waits[0]).toMatch(/^the migration lock, which session pid \d+ \(frozen-migrator\) holds/);
      await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      expect(await migrating).toEqual([]);
    } finally {
      await holder.end();
    }
  });

  it('gives up a lock held by a long reader after a few short waits, leaving the table to the hot path in between', async () => {
    const reader = new pg.Client({ connectionString: db.url });
    await reader.connect();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM events'); // holds ACCESS SHARE until it ends
      const waits: string[] = [];
      const migrating = withClient((client) =>
        migrate(client, [...listMigrations(), addColumn], { lockTimeoutMs: 200, attempts: 3, onLockWait: (step, attempt) => waits.push(`${step} ${attempt}`) }),
      );
      // Other sessions still get at events (behind a waiting ALTER they would queue as long as the reader runs).
      await new Promise((resolve) => setTimeout(resolve, 300));
      await withClient((client) => client.query('SELECT count(*) FROM events'));
      await expect(migrating).rejects.toThrow(/migration 9001_test_add_column failed: its locks were held by other sessions through 3 tries of 200 ms/);
      expect(waits).toEqual(['migration 9001_test_add_column 1', 'migration 9001_test_add_column 2']);
    } finally {
      await reader.query('ROLLBACK');
      await reader.end();
    }
    // Nothing of it stayed; with the reader gone it applies.
    expect((await db.pool.query('SELECT 1 FROM schema_migrations WHERE id = 9001')).rowCount).toBe(0);
    const applied = await withClient((client) => migrate(client, [...listMigrations(), addColumn], { lockTimeoutMs: 200, attempts: 3 }));
    expect(applied.map((m) => m.id)).toEqual([9001]);
    expect((await db.pool.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'test_note'`)).rowCount).toBe(1);
  });

  it('tells hunt ingest and the worker what is wrong with a schema behind or ahead of the code', async () => {
    expect(await schemaMismatch(db.pool)).toMatch(/the database has migrations this version does not know \(9001_test_add_column\)/);
    expect(await schemaMismatch(db.pool, [...listMigrations(), addColumn])).toBeUndefined();
    expect(await schemaMismatch(db.pool, [...listMigrations(), addColumn, { id: 9003, name: 'next', sql: '' }])).toMatch(
      /the database lacks migrations 9003_next: run `hunt migrate` with this version first/,
    );
  });

  it('stops hunt ingest at start-up on a database a newer version migrated', async () => {
    const topics = await createTestTopics(1);
    const run = await runHunt(['ingest'], {
      DATABASE_URL: db.url,
      KAFKA_TOPIC_EVENTS: topics.events,
      KAFKA_TOPIC_DLQ: topics.dlq,
      API_PORT: String(await freePort()), // free now: a random one collided with a connection's port
    });
    expect(run.timedOut).toBe(false);
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/cannot use Postgres: the database has migrations this version does not know \(9001_test_add_column\)/);
  });

  it('stops hunt worker at start-up on a database a newer version migrated', async () => {
    const run = await runHunt(['worker'], { DATABASE_URL: db.url, TEMPORAL_TASK_QUEUE: `migrate-test-${process.pid}` });
    expect(run.timedOut).toBe(false);
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/the worker cannot use Postgres: the database has migrations this version does not know \(9001_test_add_column\)/);
  });

  it('refuses a database a newer version migrated, naming the migrations it does not know', async () => {
    await db.pool.query(`INSERT INTO schema_migrations (id, name) VALUES (9002, 'from_the_future')`);
    await expect(withClient((client) => migrate(client))).rejects.toThrow(
      /the database has migrations this version does not know \(9001_test_add_column, 9002_from_the_future\): it was migrated by a newer version/,
    );
  });

  it('lets a version run on a database whose newer migrations are all marked compatible with older versions', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-migrations-'));
    fs.writeFileSync(path.join(dir, '9005_compatible_addition.sql'), '-- older-versions: compatible\nCREATE TABLE test_compatible_addition (id integer);\n');
    const [compatible] = listMigrations(dir);
    expect(compatible).toMatchObject({ id: 9005, compatibleWithOlder: true });
    expect(listMigrations().find((m) => m.id === 1)?.compatibleWithOlder).toBe(false);
    const known = [...listMigrations(), addColumn, { id: 9002, name: 'from_the_future', sql: '' }];
    expect(await withClient((client) => migrate(client, [...known, compatible!]))).toEqual([compatible]);
    // The version before 9005 starts on it (a rollback, an older replica restarting), and its
    // `hunt migrate` has nothing to refuse ...
    expect(await schemaMismatch(db.pool, known)).toBeUndefined();
    expect(await withClient((client) => migrate(client, known))).toEqual([]);
    // ... but not a version before 9001 and 9002, which are not marked.
    expect(await schemaMismatch(db.pool)).toMatch(/does not know \(9001_test_add_column, 9002_from_the_future\)/);
    fs.rmSync(dir, { recursive: true });
  });

  it('adds its own column to schema_migrations only where it is missing, and waits for that lock no longer than a migration does', async () => {
    // Known here too: 9005's mark goes with the column dropped below.
    const known = [...listMigrations(), addColumn, { id: 9002, name: 'from_the_future', sql: '' }, { id: 9005, name: 'compatible_addition', sql: '' }];
    const reader = new pg.Client({ connectionString: db.url });
    await reader.connect();
    const readSchemaMigrations = async () => {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM schema_migrations'); // as pg_dump, or a start-up check
    };
    try {
      // The column exists: a pending migration does not touch the table's definition, so the reader holds nothing up.
      await readSchemaMigrations();
      const whileRead = { id: 9006, name: 'while_read', sql: 'SELECT 1' };
      expect(await withClient((client) => migrate(client, [...known, whileRead], { lockTimeoutMs: 200, attempts: 1 }))).toEqual([whileRead]);
      await reader.query('ROLLBACK');

      // A database last migrated by a version before the column: the ALTER is bounded like a migration's.
      await db.pool.query('ALTER TABLE schema_migrations DROP COLUMN compatible_with_older');
      await readSchemaMigrations();
      const waits: string[] = [];
      const next = { id: 9007, name: 'after_the_column', sql: 'SELECT 1' };
      const all = [...known, whileRead, next];
      await expect(withClient((client) => migrate(client, all, { lockTimeoutMs: 200, attempts: 2, onLockWait: (step) => waits.push(step) }))).rejects.toThrow(
        /schema_migrations\.compatible_with_older failed: its locks were held by other sessions through 2 tries of 200 ms/,
      );
      expect(waits).toEqual(['schema_migrations.compatible_with_older']);
      await reader.query('ROLLBACK');
      expect(await withClient((client) => migrate(client, all, { lockTimeoutMs: 200, attempts: 2 }))).toEqual([next]);
      expect((await db.pool.query(`SELECT compatible_with_older FROM schema_migrations WHERE id = 9007`)).rows).toEqual([{ compatible_with_older: false }]);
    } finally {
      await reader.query('ROLLBACK').catch(() => undefined);
      await reader.end();
    }
  });
});

/** The code's migrations and every one the file's tests applied before (as known, empty), then `more`. */
async function knownAnd(...more: Migration[]): Promise<Migration[]> {
  const own = listMigrations();
  const { rows } = await db.pool.query<{ id: number; name: string }>('SELECT id, name FROM schema_migrations ORDER BY id');
  const applied = rows.filter((r) => !own.some((m) => m.id === r.id)).map((r) => ({ id: r.id, name: r.name, sql: '' }));
  return [...own, ...applied, ...more];
}

describe('hunt migrate, under what a managed Postgres and a running flush bring', () => {
  it('runs a long migration whatever statement_timeout the role or database sets by default', async () => {
    const long: Migration = { id: 9020, name: 'test_long', sql: 'SELECT pg_sleep(1.5)' };
    const all = await knownAnd(long);
    const client = new pg.Client({ connectionString: db.url, options: '-c statement_timeout=1000' }); // as ALTER ROLE ... SET would
    await client.connect();
    try {
      // Before: "canceling statement due to statement timeout", on every try.
      expect(await migrate(client, all)).toEqual([long]);
    } finally {
      await client.end();
    }
  });

  it('names the deadlock when the last try deadlocked too', async () => {
    const alwaysDeadlocks: Migration = { id: 9022, name: 'test_always_deadlocks', sql: `DO $$ BEGIN RAISE EXCEPTION 'as a deadlock would' USING ERRCODE = '40P01'; END $$` };
    const all = await knownAnd(alwaysDeadlocks);
    await expect(withClient((client) => migrate(client, all, { attempts: 2 }))).rejects.toThrow(
      /^migration 9022_test_always_deadlocks failed: it deadlocked with another session on its last try of 2 /,
    );
  });

  it('tries again a migration that Postgres chose to fail in a deadlock', async () => {
    await db.pool.query('CREATE TABLE test_dl_a (x int); CREATE TABLE test_dl_b (x int)');
    const crossed: Migration = {
      id: 9021,
      name: 'test_crossed_locks',
      sql: 'LOCK TABLE test_dl_a IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(0.2); LOCK TABLE test_dl_b IN ACCESS EXCLUSIVE MODE',
    };
    const all = await knownAnd(crossed);
    // A flush-like session: it holds b, and will want a once the migration holds a.
    const other = new pg.Client({ connectionString: db.url, application_name: 'crossing-session' });
    await other.connect();
    try {
      await other.query('BEGIN');
      // Only the migration may find the cycle: each waiter checks once, deadlock_timeout after
      // it began waiting, and the two would begin a poll apart (a busy machine could reorder them).
      await other.query(`SET LOCAL deadlock_timeout = '60s'`);
      await other.query('LOCK TABLE test_dl_b IN ACCESS EXCLUSIVE MODE');
      const waits: string[] = [];
      const migrating = withClient((client) => migrate(client, all, { onLockWait: (step) => waits.push(step) }));
      migrating.catch(() => undefined);
      await waitFor('the migration waiting for b', async () => {
        const { rows } = await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE test_dl_a%'`);
        return rows.length > 0;
      }, { timeoutMs: 10_000, intervalMs: 20 });
      // Now each waits for the other; the migration's deadlock check fails it.
      await other.query('LOCK TABLE test_dl_a IN ACCESS EXCLUSIVE MODE');
      await other.query('ROLLBACK');
      // Before: "migration 9021_test_crossed_locks failed: deadlock detected".
      expect(await migrating).toEqual([crossed]);
      expect(waits).toEqual(['migration 9021_test_crossed_locks']);
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.end();
    }
  });
});
