/**
 * Finds pooled connections that died without a word and cuts them.
 *
 * A connection a NAT or load balancer dropped, or a network cut that sent no reset, answers
 * nothing: a query on it waits for the client's query timeout (2 minutes on the hot path),
 * and the commit lane, or the partition check, waiting on it stands still meanwhile. TCP
 * cannot tell sooner: with a query written and unanswered, the kernel retransmits for many
 * minutes. Postgres can: over another connection, pg_stat_activity shows what the session
 * behind the silent one is doing. A session that has not started a statement for a while
 * (idle, idle in a transaction, or blocked writing to a client that reads nothing), behind a
 * connection the pool handed out that long ago, is not working on the query the client waits
 * for and never will. Its session is terminated (which frees the locks it holds at once,
 * instead of at the idle-in-transaction limit) and its socket destroyed, so the waiting
 * query fails now and its caller retries on a new connection: a hot-path commit changes
 * nothing twice (eventIds dedupe, offsets only grow).
 *
 * Only sessions seen are acted on: behind a connection pooler (PgBouncer) the pid the client
 * knows is not a server's, no row matches, and nothing is done. A session seen quiet and then
 * gone (Postgres ended it, and its goodbye was lost with the connection) is cut too.
 */
import pg from 'pg';
import { pgClientConfig, type PostgresTarget } from './pg-connection';

export interface SilentSessionLimits {
  /** A connection out of the pool this long, on a session this quiet (by Postgres's clock), is cut. */
  quietMs: number;
  /** How often the checked-out connections are looked at (only those out for quietMs cost a query). */
  checkEveryMs: number;
}

export const SILENT_SESSION_LIMITS: SilentSessionLimits = { quietMs: 10_000, checkEveryMs: 2_500 };

export interface SilentSession {
  pid: number;
  /** What pg_stat_activity said (`gone` once the session was ended). */
  state: string;
  checkedOutMs: number;
}

export interface SilentSessionWatch {
  stop(): Promise<void>;
}

/** The probe's own connection must not wait long either: it is made again at the next check. */
const PROBE_TIMEOUT_MS = 5_000;

/** States in which the session is not working on a statement the client has sent. */
const QUIET_SQL = `
  SELECT pid, coalesce(state, '') AS state,
         (state IN ('idle', 'idle in transaction', 'idle in transaction (aborted)')
           OR (state = 'active' AND wait_event = 'ClientWrite'))
         AND now() - state_change >= make_interval(secs => $2::float8 / 1000) AS quiet
    FROM pg_stat_activity WHERE pid = ANY($1::int[])`;

export function watchSilentSessions(
  pool: pg.Pool,
  target: PostgresTarget,
  onCut: (session: SilentSession) => void,
  limits: SilentSessionLimits = SILENT_SESSION_LIMITS,
): SilentSessionWatch {
  const checkedOut = new Map<pg.PoolClient, number>();
  /** Sessions seen quiet at the last check: one gone since was ended by Postgres. */
  let seenQuiet = new Set<pg.PoolClient>();
  const onAcquire = (client: pg.PoolClient) => checkedOut.set(client, Date.now());
  const onRelease = (_err: Error | undefined, client: pg.PoolClient) => checkedOut.delete(client);
  pool.on('acquire', onAcquire);
  pool.on('release', onRelease);

  let checking: Promise<void> = Promise.resolve();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    checking = check()
      .catch(() => undefined) // Postgres unreachable: every query fails on its own anyway
      .finally(() => (busy = false));
  }, limits.checkEveryMs);
  timer.unref();

  async function check(): Promise<void> {
    const now = Date.now();
    const overdue = [...checkedOut].filter(([client, since]) => now - since >= limits.quietMs && pidOf(client) !== undefined).map(([client]) => client);
    if (overdue.length === 0) {
      seenQuiet = new Set();
      return;
    }
    const probe = new pg.Client({ ...pgClientConfig(target), connectionTimeoutMillis: PROBE_TIMEOUT_MS, query_timeout: PROBE_TIMEOUT_MS, application_name: 'hunt silent-session check' });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      const { rows } = await probe.query<{ pid: number; state: string; quiet: boolean }>(QUIET_SQL, [overdue.map(pidOf), limits.quietMs]);
      const byPid = new Map(rows.map((r) => [r.pid, r]));
      const quietNow = new Set<pg.PoolClient>();
      for (const client of overdue) {
        if (checkedOut.get(client) === undefined) continue; // released meanwhile: it answered
        const row = byPid.get(pidOf(client)!);
        if (row?.quiet) quietNow.add(client);
        const gone = !row && seenQuiet.has(client);
        if (!row?.quiet && !gone) continue;
        await cut(probe, client, row?.state ?? 'gone', now);
        quietNow.delete(client);
      }
      seenQuiet = quietNow;
    } finally {
      await probe.end().catch(() => undefined);
    }
  }

  async function cut(probe: pg.Client, client: pg.PoolClient, state: string, now: number): Promise<void> {
    const pid = pidOf(client)!;
    if (state !== 'gone') await probe.query('SELECT pg_terminate_backend($1)', [pid]).catch(() => undefined);
    onCut({ pid, state, checkedOutMs: now - (checkedOut.get(client) ?? now) });
    checkedOut.delete(client);
    // pg has no public way to drop a connection that answers nothing (end() waits for the
    // server's reply): its socket is destroyed, and every query waiting on it fails.
    (client as unknown as { connection: { stream: { destroy(err?: Error): void } } }).connection.stream.destroy(
      new Error(`Postgres connection cut: its session (pid ${pid}) was ${state} while a query waited`),
    );
  }

  return {
    async stop() {
      clearInterval(timer);
      pool.off('acquire', onAcquire);
      pool.off('release', onRelease);
      await checking;
    },
  };
}

function pidOf(client: pg.PoolClient): number | undefined {
  const pid = (client as unknown as { processID: number | null }).processID;
  return typeof pid === 'number' && pid > 0 ? pid : undefined;
}
