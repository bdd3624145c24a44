/**
 * The per-file database as a fixture: `const db = useTestDatabase()` at the top of a file (or
 * of a describe block) registers the beforeAll/afterAll pair that every such file needs. Kept
 * apart from database.ts because that module is also loaded outside vitest (global set-up,
 * history recording), where importing 'vitest' has no runner to attach hooks to.
 */
import { afterAll, beforeAll } from 'vitest';
import type { RunnerTask } from 'vitest';
import { createTestDatabase, type TestDatabase } from './database';

export type TestDatabaseHandle = Pick<TestDatabase, 'name' | 'url' | 'pool'>;

/** True when the task, or anything under it (a test, a describe, a hook's error), failed. */
function hasFailure(task: RunnerTask): boolean {
  if (task.result?.state === 'fail') return true;
  return 'tasks' in task && task.tasks.some(hasFailure);
}

/**
 * One fresh database for the calling suite. Call it before the suite's own hooks: vitest runs
 * beforeAll hooks in order and afterAll hooks in reverse, so the database exists before the
 * suite's set-up uses it and is disposed only after the suite's tear-down (workers, ingest
 * processes) has stopped using it. It is dropped unless a test or hook of the suite failed;
 * then it is kept, and its name logged, for inspection.
 */
export function useTestDatabase(): TestDatabaseHandle {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  // vitest reads the first parameter's pattern to know which fixtures to set up: none here.
  // eslint-disable-next-line no-empty-pattern
  afterAll(async ({}, suite) => {
    await db?.dispose(hasFailure(suite));
    db = undefined;
  });
  const current = (): TestDatabase => {
    if (!db) throw new Error('useTestDatabase(): the database exists only between beforeAll and afterAll');
    return db;
  };
  return {
    get name() {
      return current().name;
    },
    get url() {
      return current().url;
    },
    get pool() {
      return current().pool;
    },
  };
}
