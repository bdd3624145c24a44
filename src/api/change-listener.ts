/**
 * One LISTEN connection per process on the hunt change feed (store/hunt-changes.ts), shared
 * by every live stream: Postgres pushes committed changes, nobody polls. The connection is
 * re-opened with backoff when it breaks; after a gap every hunt counts as changed, since
 * notifications sent meanwhile are lost.
 *
 * A connection can also die without a word (a NAT entry dropped, a failover without a reset):
 * a LISTEN connection only receives, so nothing would ever fail and every live stream would
 * go quiet while its keep-alives tell clients all is well. So the listener asks the server
 * something now and then, and a question not answered in time counts as a broken connection.
 * The question is a notification to itself, on a channel of its own, which it must hear back:
 * a connection that answers queries but gets no notifications (a pooler in transaction mode,
 * where LISTEN holds no session) would pass a plain query for ever, and every live stream
 * would go quiet after its first message. It also counts as broken, from the first check
 * after connecting, so `listening` stays false and HuntChangeFeedLost fires.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../log';
import { ALL_HUNTS, HUNT_CHANGES_CHANNEL, listenForChecks, listenForHuntChanges, parseChangePayload, sendCheck } from '../store/hunt-changes';

export type ChangeHandler = (hunts: string[] | typeof ALL_HUNTS) => void;

/**
 * The longest wait between tries to open the connection again. Live streams hear nothing
 * until it is open, so after an outage they lag by up to this much on top of it; one
 * connection per process trying every 2 s is no load on a server that is back.
 */
export const RETRY_MAX_MS = 2_000;

export interface LivenessCheck {
  /** How often the server is asked whether the connection still works. */
  intervalMs: number;
  /** How long an answer may take before the connection counts as broken. */
  timeoutMs: number;
}

const DEFAULT_LIVENESS: LivenessCheck = { intervalMs: 15_000, timeoutMs: 5_000 };

export class ChangeListener {
  private client: pg.Client | undefined;
  /** The current client is connected and its LISTEN done. */
  private heard = false;
  private stopped = false;
  private retryMs = 250;
  private livenessTimer: NodeJS.Timeout | undefined;
  /** The liveness check's channel: this listener's alone, so no other process hears its checks. */
  private readonly checkChannel = `hunt_changes_check_${crypto.randomBytes(8).toString('hex')}`;
  private checks = 0;
  /** The check waiting for its notification to come back. */
  private awaited: { token: string; heard: () => void } | undefined;

  constructor(
    private readonly connectionOptions: pg.ClientConfig,
    private readonly onChange: ChangeHandler,
    private readonly logger: Logger,
    private readonly liveness: LivenessCheck = DEFAULT_LIVENESS,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  /** Whether changes are heard now: false from start-up or a lost connection until a new one listens. */
  get listening(): boolean {
    return this.heard;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.heard = false;
    clearInterval(this.livenessTimer);
    await this.client?.end().catch(() => undefined);
  }

  /**
   * Opens the connection; never throws. Every failure, whether the connect rejects or the
   * client reports 'error' or 'end' (pg does both for one refused connect), goes through
   * lost(), which acts on the current client only: one retry loop, whatever the outage.
   */
  private async connect(): Promise<void> {
    if (this.stopped) return;
    // A connect bounded too: a server that accepts the socket and never answers (a frozen
    // primary, a route that drops packets) would hold it until TCP gives up, many minutes
    // without pushes, before the liveness check (which runs once connected) could act.
    const client = new pg.Client({ ...this.connectionOptions, query_timeout: this.liveness.timeoutMs, connectionTimeoutMillis: this.liveness.timeoutMs });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    client.on('notification', (n) => {
      if (n.channel === HUNT_CHANGES_CHANNEL) this.onChange(parseChangePayload(n.payload));
      const awaited = this.awaited;
      if (n.channel === this.checkChannel && awaited && n.payload === awaited.token) awaited.heard();
    });
    this.client = client;
    try {
      await client.connect();
      await listenForHuntChanges(client);
      await listenForChecks(client, this.checkChannel);
      await this.check(client);
    } catch (err) {
      this.lost(client, err as Error);
      return;
    }
    if (client !== this.client) return; // lost meanwhile; the retry is scheduled
    this.heard = true;
    const wasGap = this.retryMs > 250;
    this.retryMs = 250;
    this.checkLiveness(client);
    if (wasGap) this.onChange(ALL_HUNTS); // changes while we were away were not heard
  }

  private checkLiveness(client: pg.Client): void {
    clearInterval(this.livenessTimer);
    if (this.stopped) return; // stop() came while this connection was opening
    this.livenessTimer = setInterval(() => {
      this.check(client).catch((err: unknown) => this.lost(client, err as Error));
    }, this.liveness.intervalMs);
    this.livenessTimer.unref();
  }

  /**
   * Notifies this listener's own channel and waits for the notification to come back, within
   * the liveness timeout. (The client's query_timeout, set in connect, fails the NOTIFY itself
   * when the server does not answer.)
   */
  private async check(client: pg.Client): Promise<void> {
    const token = String(++this.checks);
    const { timeoutMs } = this.liveness;
    let timer: NodeJS.Timeout | undefined;
    const heard = new Promise<void>((resolve, reject) => {
      this.awaited = { token, heard: resolve };
      timer = setTimeout(
        () => reject(new Error(`the listening connection did not hear its own notification within ${timeoutMs} ms (LISTEN needs a session of its own: a pooler in transaction mode delivers no notifications)`)),
        timeoutMs,
      );
    });
    const asked = sendCheck(client, this.checkChannel, token).catch((err: unknown) => {
      throw new Error(`no answer to a liveness check within ${timeoutMs} ms`, { cause: err });
    });
    try {
      await Promise.all([heard, asked]);
    } finally {
      clearTimeout(timer);
      this.awaited = undefined;
    }
  }

  private lost(client: pg.Client, err: Error): void {
    if (this.stopped || client !== this.client) return;
    this.client = undefined;
    this.heard = false;
    clearInterval(this.livenessTimer);
    client.end().catch(() => undefined);
    this.scheduleReconnect(err);
  }

  private scheduleReconnect(err: unknown): void {
    if (this.stopped) return;
    this.logger.warn({ err, retryInMs: this.retryMs }, 'hunt change feed: listening connection lost; reconnecting');
    const delay = this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    setTimeout(() => void this.connect(), delay).unref();
  }
}
