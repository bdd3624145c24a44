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
 *   waits for, and never will; or that it has been reading a statement from the client for
 *   `readingMs` (a connection that died mid-statement: no timeout ends such a session, which
 *   keeps its connection slot and whatever its transaction holds until the server's TCP
 *   keep-alive gives up, two hours by default). A long statement or a lock wait is `active`,
 *   and never cut. A session that is gone (Postgres ended it and its goodbye was lost, or
 *   after a failover the server is another) is gone for good.
 *
 * The session is then terminated (its locks are freed at once, not at the idle-in-transaction
 * limit) and the socket destroyed, so the waiting query fails now and its caller retries on a
 * new connection: a hot-path commit changes nothing twice (eventIds dedupe, offsets only grow).
 *
 * A session is known by its pid and application name. Behind a connection pooler (PgBouncer)
 * the pid a client knows is not a server's: the check sees so of its own connection, and
 * then cuts only a session it has seen (seen active, then gone or quiet).
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { withTimeout } from '../time-limit';
import { pgClientConfig, type PostgresTarget } from './pg-connection';

export interface SilentSessionLimits {
  /** A connection out of the pool and silent this long, on a session as quiet, is cut. */
  quietMs: number;
  /**
   * The same for a session that has started a statement and is still reading it from the
   * client: a slow link can take a while to bring a big one (the client's socket shows
   * nothing once the kernel holds the rest), so it is given longer.
   */
  readingMs: number;
  /** How often the checked-out connections are looked at (only silent ones cost a query). */
  checkEveryMs: number;
}

// Reading: just under the hot path's 120 s query timeout. A slow link's big micro-batch can
// leave the client's socket still for all of its upload (the kernel or a proxy holds the rest),
// and the hot path sends it before taking any fence (stageRows), so a long read blocks no one.
export const SILENT_SESSION_LIMITS: SilentSessionLimits = { quietMs: 10_000, readingMs: 115_000, checkEveryMs: 2_500 };

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
  wait_event: string;
  /** Since the session's state last changed (a statement started or ended), by Postgres's clock. */
  unchanged_ms: number;
}

const SESSIONS_SQL = `
  SELECT pid, application_name, coalesce(state, '') AS state, coalesce(wait_event, '') AS wait_event,
         extract(epoch FROM now() - state_change) * 1000 AS unchanged_ms
    FROM pg_stat_activity WHERE pid = ANY($1::int[])`;
/** The check's own session's pid: the one its client knows unless a pooler sits between. */
const OWN_PID_SQL = `SELECT pg_backend_pid() AS pid`;
const IDLE_STATES = new Set(['idle', 'idle in transaction', 'idle in transaction (aborted)']);

/** How long the session must have been as it is, and the connection silent, before it is cut; undefined while it works. */
function limitFor(row: SessionRow, limits: SilentSessionLimits): number | undefined {
  if (IDLE_STATES.has(row.state) || (row.state === 'active' && row.wait_event === 'ClientWrite')) return limits.quietMs;
  if (row.state === 'active' && row.wait_event === 'ClientRead') return limits.readingMs;
  return undefined;
}

export function watchSilentSessions(pool: pg.Pool, target: PostgresTarget, hooks: SilentSessionHooks, limits: SilentSessionLimits = SILENT_SESSION_LIMITS): SilentSessionWatch {
  const checkouts = new Map<pg.PoolClient, Checkout>();
  const onAcquire = (client: pg.PoolClient) => checkouts.set(client, { client, traffic: trafficOf(client), silentSince: performance.now(), seen: false });
  const onRelease = (_err: Error | undefined, client: pg.PoolClient) => checkouts.delete(client);
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
      const { rows } = await probe.query<SessionRow>(SESSIONS_SQL, [silent.map((c) => pidOf(c.client))]);
      // Straight to the server (no pooler between): a pid it does not list is a session gone.
      const direct = (await probe.query<{ pid: number }>(OWN_PID_SQL)).rows[0]?.pid === pidOf(probe);
      for (const checkout of silent) {
        // Released (it answered) or taken again meanwhile: this check is not about its new use.
        if (checkouts.get(checkout.client) !== checkout || trafficOf(checkout.client) !== checkout.traffic) continue;
        const row = rows.find((r) => r.pid === pidOf(checkout.client) && sameApplication(checkout.client, r.application_name));
        if (!row) {
          if (checkout.seen || direct) await cut(probe, checkout, 'gone', now);
          continue;
        }
        checkout.seen = true;
        const limit = limitFor(row, limits);
        if (limit !== undefined && Number(row.unchanged_ms) >= limit && now - checkout.silentSince >= limit) {
          await cut(probe, checkout, row.wait_event ? `${row.state} (${row.wait_event})` : row.state, now);
        }
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
      pool.off('acquire', onAcquire);
      pool.off('release', onRelease);
      await checking;
    },
  };
}

/**
 * TCP keep-alive on the server's side of the hot path's sessions, and a bound on how long its
 * replies may go unacknowledged. A session whose client vanished while Postgres was reading a
 * statement from it (a connection dead halfway through a micro-batch) is neither idle in a
 * transaction nor running, so no timeout ends it, and it keeps its connection slot (and what
 * its transaction holds) until the server's keep-alive gives up: over two hours with Linux's
 * defaults, about 30 s with these; one whose replies go unacknowledged, some 15 minutes of
 * retransmission, 30 s with the user timeout. Set per session, so no server setting is needed
 * (a Unix socket ignores them). Behind a proxy, the proxy answers the probes: the
 * silent-connection watch (watchSilentSessions) covers that case.
 */
const SERVER_KEEPALIVE_SQL = `SELECT set_config('tcp_keepalives_idle', '15', false), set_config('tcp_keepalives_interval', '5', false),
  set_config('tcp_keepalives_count', '3', false), set_config('tcp_user_timeout', '30000', false)`;

/** Sets the server-side keep-alive on each new session of `pool`, queued ahead of the first statement it is handed out for. */
export function keepServerSideAlive(pool: pg.Pool): void {
  pool.on('connect', (client) => void client.query(SERVER_KEEPALIVE_SQL).catch(() => undefined));
}

/** A short-lived connection of its own: the pool's may be the silent ones. */
async function withProbe(target: PostgresTarget, use: (probe: pg.Client) => Promise<void>): Promise<void> {
  const probe = new pg.Client({ ...pgClientConfig(target), connectionTimeoutMillis: PROBE_TIMEOUT_MS, query_timeout: PROBE_TIMEOUT_MS, application_name: 'hunt silent-session check' });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    await use(probe);
  } finally {
    await endWithin(probe, PROBE_TIMEOUT_MS);
  }
}

/**
 * Ends `client`, cutting its socket when the server has not closed it within `ms`: end() waits
 * for the server's goodbye, and a connection gone silent never sends one until TCP gives up.
 */
export async function endWithin(client: pg.Client, ms: number): Promise<void> {
  await withTimeout(client.end(), ms).catch(() => streamOf(client).destroy());
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
