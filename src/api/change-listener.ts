/**
 * One LISTEN connection per process on the hunt change feed (store/hunt-changes.ts), shared
 * by every live stream: Postgres pushes committed changes, nobody polls. The connection is
 * re-opened with backoff when it breaks; after a gap every hunt counts as changed, since
 * notifications sent meanwhile are lost.
 */
import pg from 'pg';
import type { Logger } from '../log';
import { ALL_HUNTS, HUNT_CHANGES_CHANNEL, listenForHuntChanges, parseChangePayload } from '../store/hunt-changes';

export type ChangeHandler = (hunts: string[] | typeof ALL_HUNTS) => void;

const RETRY_MAX_MS = 10_000;

export class ChangeListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private retryMs = 250;

  constructor(
    private readonly connectionOptions: pg.ClientConfig,
    private readonly onChange: ChangeHandler,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.connect().catch((err: unknown) => this.scheduleReconnect(err));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.connectionOptions);
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    client.on('notification', (n) => {
      if (n.channel === HUNT_CHANGES_CHANNEL) this.onChange(parseChangePayload(n.payload));
    });
    this.client = client;
    await client.connect();
    await listenForHuntChanges(client);
    const wasGap = this.retryMs > 250;
    this.retryMs = 250;
    if (wasGap) this.onChange(ALL_HUNTS); // changes while we were away were not heard
  }

  private lost(client: pg.Client, err: Error): void {
    if (this.stopped || client !== this.client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.scheduleReconnect(err);
  }

  private scheduleReconnect(err: unknown): void {
    if (this.stopped) return;
    this.logger.warn({ err, retryInMs: this.retryMs }, 'hunt change feed: listening connection lost; reconnecting');
    const delay = this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    setTimeout(() => void this.connect().catch((e: unknown) => this.scheduleReconnect(e)), delay).unref();
  }
}
