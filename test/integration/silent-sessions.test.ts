/**
 * The silent-connection watch (src/store/silent-sessions.ts) on the real Postgres, through a
 * forwarder: a connection dead without a word is cut, whether its session sits idle or was
 * ended meanwhile; one on a slow link, moving a big micro-batch or a big result, is not. Short limits (1 s) so each case takes seconds.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createPool } from '../../src/store/pool';
import { createIngestPool } from '../../src/ingest/service';
import { classifySlice } from '../../src/pipeline/classify';
import { commitMicroBatch, type MicroBatch } from '../../src/pipeline/commit';
import { NAMED_PARAMETERS_MAX_CHARS } from '../../src/store/hot-path/statement-name';
import { watchSilentSessions, type SilentSession } from '../../src/store/silent-sessions';
import { clueFound, recordOf } from '../helpers/event-builders';
import { useTestDatabase } from '../helpers/database-fixture';
import { forwardDatabase, type ForwardOptions, type Forwarder } from '../helpers/tcp-forward';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();
// Reading a statement: longer than the slow link below takes to bring the big batch (about 5 s).
const LIMITS = { quietMs: 1000, readingMs: 8000, checkEveryMs: 200 };
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** A pool (a plain one, or `hunt ingest`'s) reaching the test's database through a forwarder, watched. */
async function watchedPool(options: ForwardOptions = {}, makePool = (url: string) => createPool({ databaseUrl: url }, 2)): Promise<{ pool: pg.Pool; forwarder: Forwarder; cuts: SilentSession[] }> {
  const { forwarder, url } = await forwardDatabase(db.url, options);
  const pool = makePool(url);
  const cuts: SilentSession[] = [];
  const watch = watchSilentSessions(pool, { databaseUrl: db.url }, { onCut: (session) => cuts.push(session) }, LIMITS);
  cleanups.push(() => forwarder.close(), () => pool.end(), () => watch.stop());
  return { pool, forwarder, cuts };
}
const ingestPool = (url: string) => createIngestPool({ databaseUrl: url }, 1, () => undefined);

const pidOf = (client: pg.PoolClient) => (client as unknown as { processID: number }).processID;

/**
 * A transaction on a checked-out client whose connection then stops passing anything (after
 * `meanwhile`, done while it is frozen): the next query's failure, the client released.
 */
async function queryOnFrozenConnection(pool: pg.Pool, forwarder: Forwarder, meanwhile: (pid: number) => Promise<unknown> = async () => undefined) {
  const client = await pool.connect();
  await client.query('BEGIN');
  await client.query('SELECT 1');
  forwarder.freezeOpen();
  await meanwhile(pidOf(client));
  const failure = await client.query('SELECT 2').then(() => undefined, (err: unknown) => err);
  client.release(true);
  return { pid: pidOf(client), failure: String(failure) };
}

describe('the silent-connection watch', () => {
  it('cuts a connection that stopped passing anything while its session sits idle, so the waiting query fails at once', async () => {
    const { pool, forwarder, cuts } = await watchedPool();
    const { pid, failure } = await queryOnFrozenConnection(pool, forwarder);
    expect(failure).toMatch(/Postgres connection cut: its session \(pid \d+\) was idle in transaction/);
    expect(cuts).toEqual([expect.objectContaining({ pid, state: expect.stringMatching(/^idle in transaction/) })]);
    // Terminated, not left holding what it locked until the idle-in-transaction limit.
    await waitFor('the session to end', async () => (await db.pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0, { timeoutMs: 5000 });
  });

  it('cuts one whose session, seen running, was ended while the link was down (its goodbye lost)', async () => {
    const { pool, forwarder, cuts } = await watchedPool();
    const client = await pool.connect();
    const running = client.query('SELECT pg_sleep(4)').then(() => undefined, (err: unknown) => err);
    // Seen active (a long statement is never cut) by a check once the client has been silent
    // for the limit (1 s, checks every 0.2 s), well before the statement ends.
    await new Promise((resolve) => setTimeout(resolve, 1600));
    forwarder.freezeOpen();
    await db.pool.query('SELECT pg_terminate_backend($1)', [pidOf(client)]);
    expect(String(await running)).toMatch(/Postgres connection cut: its session \(pid \d+\) was gone/);
    client.release(true);
    expect(cuts).toEqual([expect.objectContaining({ pid: pidOf(client), state: 'gone' })]);
  });

  it('cuts one whose session was ended before any check saw it, the check reaching the server itself (no pooler between)', async () => {
    const { pool, forwarder, cuts } = await watchedPool();
    const { pid, failure } = await queryOnFrozenConnection(pool, forwarder, (frozen) => db.pool.query('SELECT pg_terminate_backend($1)', [frozen]));
    expect(failure).toMatch(/Postgres connection cut: its session \(pid \d+\) was gone/);
    expect(cuts).toEqual([expect.objectContaining({ pid, state: 'gone' })]);
  });

  it('leaves alone a slow link moving a big micro-batch, after a small one prepared the hot path\'s statements on the connection', async () => {
    // 200 KiB/s: the big batch (about 1 MiB) takes about 5 s to arrive, five times the limit.
    const { pool, cuts } = await watchedPool({ bytesPerSecond: 200 * 1024 }, ingestPool);
    await commitMicroBatch(pool, 'g', batchOf(0, 10));
    // A prepared statement's Bind would arrive with no Parse ahead of it, the session shown
    // idle in transaction meanwhile, as behind a dead connection: a big one goes unnamed.
    const big = batchOf(10, 5000);
    expect(big.rows.json.length).toBeGreaterThan(NAMED_PARAMETERS_MAX_CHARS * 8);
    expect(await commitMicroBatch(pool, 'g', big)).toMatchObject({ inserted: 5000 });
    expect(cuts).toEqual([]);
    // The server's side probes the connection too, soon: a session reading a statement from a
    // vanished client would otherwise hold its fences for the server's default two hours.
    const { rows } = await pool.query<{ idle: string; interval: string; count: string }>(
      `SELECT current_setting('tcp_keepalives_idle') AS idle, current_setting('tcp_keepalives_interval') AS interval, current_setting('tcp_keepalives_count') AS count`,
    );
    expect(rows).toEqual([{ idle: '15', interval: '5', count: '3' }]);
  }, 30_000);

  it('cuts one that died halfway through sending a big micro-batch (its session reading the statement), which holds no fence meanwhile', async () => {
    const { pool, forwarder } = await watchedPool({ bytesPerSecond: 200 * 1024 }, ingestPool);
    await commitMicroBatch(pool, 'g', batchOf(19_000, 10)); // the hunts' fence rows exist
    // About 5 s to send. Its rows go before the fence lock (stageRows), so while they cross,
    // and once the link is dead, its session holds none of hunt-0..2's fences.
    const commit = commitMicroBatch(pool, 'g', batchOf(20_000, 5000)).then(() => undefined, (err: unknown) => err);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    forwarder.freezeOpen();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const locker = await db.pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`SET LOCAL lock_timeout = '2s'`);
      await locker.query(`SELECT 1 FROM hunts WHERE hunt_id IN ('hunt-0', 'hunt-1', 'hunt-2') FOR UPDATE`);
      await locker.query('ROLLBACK');
    } finally {
      locker.release();
    }
    expect(String(await commit)).toMatch(/Postgres connection cut: its session \(pid \d+\) was active \(ClientRead\)/);
  }, 30_000);

  it('leaves alone a slow link bringing a big result back from a session shown idle', async () => {
    const { pool, cuts } = await watchedPool({ bytesPerSecond: 200 * 1024 });
    const { rows } = await pool.query<{ s: string }>(`SELECT repeat('z', 1024 * 1024) AS s`);
    expect(rows[0]?.s.length).toBe(1024 * 1024);
    expect(cuts).toEqual([]);
  }, 30_000);
});

/** A micro-batch of `count` accepted events, from offset `from` of one partition. */
function batchOf(from: number, count: number): MicroBatch {
  const records = Array.from({ length: count }, (_, i) => {
    const n = from + i;
    const event = clueFound({ eventId: `silent-${n}`, huntId: `hunt-${n % 3}`, playerId: `p${n % 50}`, occurredAt: new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString(), clueId: `c${n}`, points: 10 });
    return { offset: String(n), key: Buffer.from(event.huntId), value: recordOf(event), timestamp: String(Date.now()) };
  });
  const slice = classifySlice('silent', 0, records, new Date());
  return { rows: slice.rows, origins: slice.origins, rejected: slice.rejected, offsets: [{ topic: 'silent', partition: 0, nextOffset: BigInt(from + count) }] };
}
