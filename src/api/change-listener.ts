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
 * The question is a notification on a channel of its own, sent from another session (a
 * short-lived connection), which the listening connection must hear: one that answers
 * queries but gets no notifications (a pooler in transaction mode, where LISTEN holds no
 * session) would pass a plain query for ever, and every live stream would go quiet after its
 * first message. Sent on the listening connection itself, such a pooler would often run it
 * on the very server session that LISTENed, and deliver it. It also counts as broken, from
 * the first check after connecting, so `listening` stays false and HuntChangeFeedLost fires.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../log';
import { TimeoutError, withTimeout } from '../time-limit';
import { endWithin } from '../store/silent-sessions';
import { everyFewSeconds } from './throttle';
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
  /** The checks waiting for their notification, by token. */
  private readonly awaited = new Map<string, () => void>();
  /** The checks' second connections, open now: stop() ends them. */
  private readonly senders = new Set<pg.Client>();
  /**
   * A check that could not open its second connection goes on the listening one, which a
   * pooler in transaction mode would pass: said, at most every 5 minutes, so it is not silent.
   */
  private readonly warnCheckedOnItself = everyFewSeconds(
    (count: number, err: unknown) =>
      this.logger.warn({ err, count }, 'hunt change feed: the liveness check could not open a second connection, and notified on the listening connection itself (a pooler in transaction mode would pass that)'),
    5 * 60_000,
  );

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
    await Promise.all([this.client, ...this.senders].map((client) => client && endWithin(client, END_WAIT_MS)));
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
      if (n.channel === this.checkChannel && n.payload !== undefined) this.awaited.get(n.payload)?.();
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
   * Notifies this listener's channel and waits for the listening connection to hear it. Sent
   * from a session of its own (a short-lived connection) when one can be opened; when none
   * can (max_connections reached, say), on the listening connection itself, which then at
   * least proves that it answers: a check must not end a working feed because no second
   * connection was to be had. The whole check has twice the liveness timeout, below the
   * interval between checks.
   */
  private async check(client: pg.Client): Promise<void> {
    const token = String(++this.checks);
    const limitMs = 2 * this.liveness.timeoutMs;
    const heard = new Promise<void>((resolve) => this.awaited.set(token, resolve));
    const sent = this.sendFromAnotherSession(token).catch((err: unknown) => {
      this.warnCheckedOnItself(err);
      return sendCheck(client, this.checkChannel, token);
    });
    try {
      await withTimeout(Promise.all([heard, sent]), limitMs);
    } catch (err) {
      if (err instanceof TimeoutError) {
        throw new Error(`the listening connection did not hear a notification sent to it within ${limitMs} ms (a pooler in transaction mode delivers none: LISTEN needs a session of its own)`, {
          cause: err,
        });
      }
      throw new Error('no answer to a liveness check', { cause: err });
    } finally {
      this.awaited.delete(token);
    }
  }

  /** Sends the check's notification from a short-lived connection of its own. */
  private async sendFromAnotherSession(token: string): Promise<void> {
    const { timeoutMs } = this.liveness;
    const sender = new pg.Client({ ...this.connectionOptions, application_name: 'hunt-change-feed-check', query_timeout: timeoutMs, connectionTimeoutMillis: timeoutMs });
    sender.on('error', () => undefined); // its connect or query rejects
    this.senders.add(sender);
    try {
      await sender.connect();
      await sendCheck(sender, this.checkChannel, token);
    } finally {
      this.senders.delete(sender);
      // Bounded like every goodbye here: a sender whose link went silent would otherwise keep
      // its socket (and this check's promise) until TCP gave up, one more at every check.
      await endWithin(sender, END_WAIT_MS);
    }
  }

  private lost(client: pg.Client, err: Error): void {
    if (this.stopped || client !== this.client) return;
    this.client = undefined;
    this.heard = false;
    clearInterval(this.livenessTimer);
    // A connection is mostly lost because its link went silent, which answers a goodbye with
    // nothing: an unbounded end() kept that socket open until TCP gave up, one per outage.
    void endWithin(client, END_WAIT_MS);
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

/**
 * How long a goodbye is waited for, at stop() and for a connection given up: pg's end()
 * resolves once the server closes the socket, and a connection gone silent (a failover without
 * a reset, a NAT that dropped it) never does until TCP gives up, minutes later. A stop (SIGTERM)
 * then spent its whole deadline here, and the consumer after it was never stopped: no commit of
 * what it held, no leaving the group.
 */
const END_WAIT_MS = 1000;
