/**
 * Reconcile's progress in `--wait` and `hunt jobs` reads Postgres through lazyPool: a Postgres
 * that stops answering costs each look a bounded wait, never the whole command.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { lazyPool } from '../../src/cli/start-job';
import { countReconciledHunts } from '../../src/store/correctness/reconcile';
import { useTestDatabase } from '../helpers/database-fixture';
import { forwardDatabase } from '../helpers/tcp-forward';

const db = useTestDatabase();
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function poolThroughForwarder() {
  const { forwarder, url } = await forwardDatabase(db.url);
  const pool = lazyPool({ databaseUrl: url });
  cleanups.push(() => forwarder.close(), () => pool.end());
  return { forwarder, pool };
}

describe("reconcile progress's pool", () => {
  it('gives up on a connection that stops answering mid-query, and on one that never answers its start-up', { timeout: 60_000 }, async () => {
    const open = await poolThroughForwarder();
    expect(await countReconciledHunts(open.pool.get(), 'no-such-run')).toBe(0);
    open.forwarder.freeze();
    await expect(countReconciledHunts(open.pool.get(), 'no-such-run')).rejects.toThrow(/timeout/i);

    const silent = await poolThroughForwarder();
    silent.forwarder.freeze();
    await expect(countReconciledHunts(silent.pool.get(), 'no-such-run')).rejects.toThrow(/timeout/i);
  });
});
