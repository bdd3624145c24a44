/**
 * Finds pooled connections that died without a word and cuts them.
 *
 * A connection a NAT or load balancer dropped, or a network cut that sent no reset, answers
 * nothing: a query on it waits for the client's query timeout (2 minutes on the hot path),
 * and the commit lane, or the partition check, waiting on it stands still meanwhile. TCP
 * cannot tell sooner: with a query written and unanswered, the kernel retransmits for many
 * minutes.
 *
 * Two sides must agree before a connection is cut:
 * - The client's: nothing has moved on the socket for a while, no byte received and no byte
 *   of a pending write taken by the kernel. A slow link moving a big batch or a big result
 *   moves something, however slowly.
 * - Postgres's: over another connection, pg_stat_activity shows that the session behind it
 *   has not been running a statement for as long (idle, idle in a transaction, or blocked
 *   writing to a client that reads nothing), so it is not working on the query the client
 *   waits for, and never will. A long statement or a lock wait is `active`, and never cut.
 *   A session seen before and gone since (Postgres ended it, its goodbye lost on the way), or
 *   one of a server started after the connection was made (a failover), is gone for good.
 *
 * The session is then terminated (its locks are freed at once, not at the idle-in-transaction
 * limit) and the socket destroyed, so the waiting query fails now and its caller retries on a
 * new connection: a hot-path commit changes nothing twice (eventIds dedupe, offsets only grow).
 *
 * A session is known by its pid and application name. Behind a connection pooler (PgBouncer)
 * the pid the client knows is not a server's: no row matches, and nothing is done.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { pgClientConfig, type PostgresTarget } from './pg-connection';

export interface SilentSessionLimits {
  /** A connection out of the pool and silent this long, on a session as quiet, is cut. */
  quietMs: number;
  /** How often the checked-out connections are looked at (only silent ones cost a query). */
  checkEveryMs: number;
}

export const SILENT_SESSION_LIMITS: SilentSessionLimits = { quietMs: 10_000, checkEveryMs: 2_500 };

export interface SilentSession {
  pid: number;
  /** What pg_stat_activity said, or `gone`. */
  state: string;
  /** How long nothing moved on the connection. */
  silentMs: number;
}

export interface SilentSessionHooks {
  onCut: (session: SilentSession) => void;
  /** The check could not ask Postgres (unreachable, out of connections): no connection is cut meanwhile. */
  onCheckFailed?: (err: unknown) => void;
}

export interface SilentSessionWatch {
  stop(): Promise<void>;
}

/** The check's own connection must not wait long either: it is made again at the next check. */
const PROBE_TIMEOUT_MS = 5_000;
/** A server started this long after a connection was made is not the one it was made to (clocks differ a little). */
const CLOCK_MARGIN_MS = 5_000;

/** One checkout of a pooled client. */
interface Checkout {
  client: pg.PoolClient;
  /** What the socket had moved when last looked at, and since when it has not moved. */
  traffic: string;
  silentSince: number;
  /** Postgres showed the session at a check: if it is gone later, it was ended. */
  seen: boolean;
}

interface SessionRow {
  pid: number;
  application_name: string;
  state: string;
  quiet: boolean;
}

/** States in which the session is not working on a statement the client has sent. */
const SESSIONS_SQL = `
  SELECT pid, application_name, coalesce(state, '') AS state,
         (state IN ('idle', 'idle in transaction', 'idle in transaction (aborted)')
           OR (state = 'active' AND wait_event = 'ClientWrite'))
         AND now() - state_change >= make_interval(secs => $2::float8 / 1000) AS quiet
    FROM pg_stat_activity WHERE pid = ANY($1::int[])`;
const SERVER_STARTED_SQL = `SELECT extract(epoch FROM pg_postmaster_start_time()) * 1000 AS started_ms`;

export function watchSilentSessions(pool: pg.Pool, target: PostgresTarget, hooks: SilentSessionHooks, limits: SilentSessionLimits = SILENT_SESSION_LIMITS): SilentSessionWatch {
  const checkouts = new Map<pg.PoolClient, Checkout>();
  /** When each client connected, by this machine's clock: compared with the server's start. */
  const connectedAt = new WeakMap<pg.Client, number>();
  const onConnect = (client: pg.Client) => connectedAt.set(client, Date.now());
  const onAcquire = (client: pg.PoolClient) => checkouts.set(client, { client, traffic: trafficOf(client), silentSince: performance.now(), seen: false });
  const onRelease = (_err: Error | undefined, client: pg.PoolClient) => checkouts.delete(client);
  pool.on('connect', onConnect);
  pool.on('acquire', onAcquire);
  pool.on('release', onRelease);

  let checking: Promise<void> = Promise.resolve();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    checking = check()
      .catch((err: unknown) => hooks.onCheckFailed?.(err))
      .finally(() => (busy = false));
  }, limits.checkEveryMs);
  timer.unref();

  async function check(): Promise<void> {
    const now = performance.now();
    const silent: Checkout[] = [];
    for (const checkout of checkouts.values()) {
      const traffic = trafficOf(checkout.client);
      if (traffic !== checkout.traffic) Object.assign(checkout, { traffic, silentSince: now });
      else if (now - checkout.silentSince >= limits.quietMs && pidOf(checkout.client) !== undefined) silent.push(checkout);
    }
    if (silent.length === 0) return;
    await withProbe(target, async (probe) => {
      const { rows } = await probe.query<SessionRow>(SESSIONS_SQL, [silent.map((c) => pidOf(c.client)), limits.quietMs]);
      const serverStartedMs = Number((await probe.query<{ started_ms: string }>(SERVER_STARTED_SQL)).rows[0]?.started_ms);
      for (const checkout of silent) {
        // Released (it answered) or taken again meanwhile: this check is not about its new use.
        if (checkouts.get(checkout.client) !== checkout || trafficOf(checkout.client) !== checkout.traffic) continue;
        const row = rows.find((r) => r.pid === pidOf(checkout.client) && sameApplication(checkout.client, r.application_name));
        const madeBeforeServer = serverStartedMs > (connectedAt.get(checkout.client) ?? Infinity) + CLOCK_MARGIN_MS;
        if (row && !row.quiet) checkout.seen = true;
        else if (row || checkout.seen || madeBeforeServer) await cut(probe, checkout, row?.state ?? 'gone', now);
      }
    });
  }

  async function cut(probe: pg.Client, checkout: Checkout, state: string, now: number): Promise<void> {
    const pid = pidOf(checkout.client)!;
    if (state !== 'gone') await probe.query('SELECT pg_terminate_backend($1)', [pid]).catch(() => undefined);
    checkouts.delete(checkout.client);
    hooks.onCut({ pid, state, silentMs: Math.round(now - checkout.silentSince) });
    streamOf(checkout.client).destroy(new Error(`Postgres connection cut: its session (pid ${pid}) was ${state} while a query waited and nothing moved on the connection`));
  }

  return {
    async stop() {
      clearInterval(timer);
      pool.off('connect', onConnect);
      pool.off('acquire', onAcquire);
      pool.off('release', onRelease);
      await checking;
    },
  };
}

/** A short-lived connection of its own: the pool's may be the silent ones. */
async function withProbe(target: PostgresTarget, use: (probe: pg.Client) => Promise<void>): Promise<void> {
  const probe = new pg.Client({ ...pgClientConfig(target), connectionTimeoutMillis: PROBE_TIMEOUT_MS, query_timeout: PROBE_TIMEOUT_MS, application_name: 'hunt silent-session check' });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    await use(probe);
  } finally {
    // end() waits for the server to close; one that went silent too would hold the check for ever.
    const ended = probe.end().then(() => true, () => true);
    const inTime = await Promise.race([ended, new Promise<false>((resolve) => setTimeout(() => resolve(false), PROBE_TIMEOUT_MS).unref())]);
    if (!inTime) streamOf(probe).destroy();
  }
}

type SocketLike = { bytesRead?: number; bytesWritten?: number; _handle?: { writeQueueSize?: number } | null; _parent?: SocketLike | null; destroy(err?: Error): void };

/**
 * pg has no public way to reach a connection's socket (its own connect timeout destroys it
 * the same way). Under TLS the stream is the TLS socket, over the TCP one (`_parent`).
 */
function streamOf(client: pg.Client): SocketLike {
  return (client as unknown as { connection: { stream: SocketLike } }).connection.stream;
}

/**
 * What the socket has moved so far: bytes received, bytes written, and what the kernel has
 * still to take of pending writes (libuv's write queue, which shrinks as a slow link takes a
 * big write; Node's own socket timeouts read it for the same reason), for the TLS socket and
 * the TCP socket beneath it.
 */
function trafficOf(client: pg.Client): string {
  const stream = streamOf(client);
  const parent = stream._parent;
  return [stream.bytesRead, stream.bytesWritten, stream._handle?.writeQueueSize, parent?.bytesRead, parent?._handle?.writeQueueSize].join('/');
}

function pidOf(client: pg.Client): number | undefined {
  const pid = (client as unknown as { processID: number | null }).processID;
  return typeof pid === 'number' && pid > 0 ? pid : undefined;
}

/** Postgres keeps 63 bytes of an application name, and replaces what is not ASCII: compared only when that is all it can be. */
function sameApplication(client: pg.Client, shown: string): boolean {
  const params = (client as unknown as { connectionParameters: { application_name?: string; fallback_application_name?: string } }).connectionParameters;
  const name = params.application_name || params.fallback_application_name;
  if (!name || !/^[\x20-\x7e]*$/.test(name)) return true;
  return shown === name.slice(0, 63);
}
