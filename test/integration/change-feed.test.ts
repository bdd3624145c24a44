/**
 * The live streams' change feed (one LISTEN connection per read API process) on the real
 * Postgres, through a TCP proxy that can go silent the way a dropped NAT entry or a failover
 * without a reset does: no error, no end, nothing. The listener must notice by itself, open a
 * new connection, and count every hunt as changed, since what was notified meanwhile is lost.
 */
import net from 'node:net';
import { afterAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import pino from 'pino';
import { ChangeListener, RETRY_MAX_MS, type ChangeHandler } from '../../src/api/change-listener';
import { createLogger, type Logger } from '../../src/log';
import { ALL_HUNTS, HUNT_CHANGES_CHANNEL } from '../../src/store/hunt-changes';
import { withTimeout } from '../../src/time-limit';
import { useTestDatabase } from '../helpers/database-fixture';
import { freePort } from '../helpers/tcp-forward';
import { waitFor } from '../helpers/wait';

const db = useTestDatabase();
const notify = (huntId: string) => db.pool.query('SELECT pg_notify($1, $2)', [HUNT_CHANGES_CHANNEL, huntId]);

/** Forwards to Postgres; `freeze()` makes the connections open now forward nothing, for good. */
async function silentableProxy(target: URL) {
  const open = new Set<net.Socket>();
  const frozen = new WeakSet<net.Socket>();
  // Half-open allowed: a frozen connection answers a client's goodbye (FIN) with nothing, as a
  // silent network does; a live one passes it on.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    open.add(client);
    client.on('data', (chunk) => { if (!frozen.has(client)) upstream.write(chunk); });
    upstream.on('data', (chunk) => { if (!frozen.has(client)) client.write(chunk); });
    client.on('end', () => { if (!frozen.has(client)) { upstream.end(); client.end(); } });
    const close = () => { open.delete(client); client.destroy(); upstream.destroy(); };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => open.forEach((socket) => frozen.add(socket)),
    close: () => { open.forEach((socket) => socket.destroy()); server.close(); },
  };
}

/** Forwards its first connection to Postgres and cuts every later one at once: no second connection is to be had. */
async function oneConnectionProxy(target: URL) {
  const open = new Set<net.Socket>();
  let taken = false;
  const server = net.createServer((client) => {
    if (taken) return void client.destroy();
    taken = true;
    const upstream = net.connect(Number(target.port), target.hostname);
    open.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => { open.forEach((socket) => socket.destroy()); server.close(); },
  };
}

/** A port nothing listens on yet; `open()` starts forwarding it to Postgres. */
async function portOpenedLater(target: URL) {
  const port = await freePort();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return {
    port,
    open: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    close: () => server.close(),
  };
}

/**
 * Forwards to Postgres, but drops the notifications Postgres sends (NotificationResponse,
 * message type 'A') that `keep` refuses, given the pid of the session that sent it and of
 * the connection's own session (from its BackendKeyData, 'K'): a pooler in transaction mode,
 * where LISTEN holds no session, answers queries and delivers no notifications, or only
 * those run on the server session that LISTENed.
 */
async function notificationDroppingProxy(target: URL, keep: (senderPid: number, ownPid: number) => boolean = () => false) {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    open.add(client);
    client.pipe(upstream);
    let unread = Buffer.alloc(0);
    let ownPid = -1;
    upstream.on('data', (chunk: Buffer) => {
      unread = Buffer.concat([unread, chunk]);
      // Every server message: a type byte, then its length (which counts itself).
      while (unread.length >= 5 && unread.length >= 1 + unread.readInt32BE(1)) {
        const message = unread.subarray(0, 1 + unread.readInt32BE(1));
        unread = unread.subarray(message.length);
        if (message[0] === 0x4b) ownPid = message.readInt32BE(5);
        if (message[0] !== 0x41 || keep(message.readInt32BE(5), ownPid)) client.write(message);
      }
    });
    const close = () => { open.delete(client); client.destroy(); upstream.destroy(); };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => { open.forEach((socket) => socket.destroy()); server.close(); },
  };
}

const LIVENESS = { intervalMs: 1000, timeoutMs: 2500 };

describe('the change feed', () => {
  const cleanups: (() => unknown)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /**
   * A listener through the proxy on `port`, checked every second within 2.5 s, stopped after the
   * suite. Each check opens a connection and commits a NOTIFY: on a busy machine one fsync can
   * take 300 ms, which a tighter limit took for a broken connection.
   */
  function listenThrough(port: number, onChange: ChangeHandler, logger: Logger): ChangeListener {
    const target = new URL(db.url);
    const listener = new ChangeListener(
      { host: '127.0.0.1', port, user: decodeURIComponent(target.username), password: decodeURIComponent(target.password), database: target.pathname.slice(1) },
      onChange,
      logger,
      LIVENESS,
    );
    cleanups.push(() => listener.stop());
    return listener;
  }

  it('notices a connection gone silent, reconnects, and counts every hunt as changed', async () => {
    const target = new URL(db.url);
    const proxy = await silentableProxy(target);
    cleanups.push(proxy.close);
    const heard: Parameters<ChangeHandler>[0][] = [];
    const listener = listenThrough(proxy.port, (hunts) => heard.push(hunts), createLogger({ logLevel: 'fatal' }));
    await listener.start();
    await waitFor('the listener to listen', () => listener.listening);

    await notify('hunt-before');
    await waitFor('the notification before the freeze', () => heard.some((h) => Array.isArray(h) && h.includes('hunt-before')));

    proxy.freeze();
    const heardBeforeFreeze = heard.length;
    await notify('hunt-lost'); // never reaches the frozen connection
    await waitFor('every hunt marked changed after the reconnect', () => heard.slice(heardBeforeFreeze).includes(ALL_HUNTS), { timeoutMs: 30_000 });
    expect(heard.some((h) => Array.isArray(h) && h.includes('hunt-lost'))).toBe(false);

    // The new connection hears what comes next.
    await notify('hunt-after');
    await waitFor('the notification after the reconnect', () => heard.some((h) => Array.isArray(h) && h.includes('hunt-after')));
  });

  it('closes the socket of a connection it gave up, instead of waiting for a goodbye that never comes', async () => {
    // Every listening connection the listener opens (its checks' short-lived senders apart).
    const listening: pg.Client[] = [];
    const connect = pg.Client.prototype.connect as (this: pg.Client) => Promise<pg.Client>;
    const spy = vi.spyOn(pg.Client.prototype, 'connect').mockImplementation(function (this: pg.Client) {
      if ((this as unknown as { connectionParameters: { application_name?: string } }).connectionParameters.application_name !== 'hunt-change-feed-check') listening.push(this);
      return connect.call(this);
    } as unknown as typeof pg.Client.prototype.connect);
    cleanups.push(() => spy.mockRestore());
    const proxy = await silentableProxy(new URL(db.url));
    cleanups.push(proxy.close);
    const listener = listenThrough(proxy.port, () => undefined, createLogger({ logLevel: 'fatal' }));
    await listener.start();
    await waitFor('the listener to listen', () => listener.listening);
    spy.mockRestore(); // the clients of other tests are theirs
    expect(listening).toHaveLength(1);
    const socketOf = (client: pg.Client) => (client as unknown as { connection: { stream: net.Socket } }).connection.stream;

    proxy.freeze();
    await waitFor('the silent connection given up', () => !listener.listening, { timeoutMs: 15_000 });
    // Before, its end() waited for the server's goodbye, which a silent link never sends: the
    // socket stayed open until TCP gave up (never, without keep-alives), one more per outage.
    await waitFor('the given-up connection\'s socket closed', () => socketOf(listening[0]!).destroyed, { timeoutMs: 5_000 });
  });

  it('stops within seconds when its connection has gone silent, instead of waiting for a goodbye that never comes', async () => {
    const target = new URL(db.url);
    const proxy = await silentableProxy(target);
    cleanups.push(proxy.close);
    const listener = listenThrough(proxy.port, () => undefined, createLogger({ logLevel: 'fatal' }));
    await listener.start();
    await waitFor('the listener to listen', () => listener.listening);
    proxy.freeze();
    // Before, stop waited for the server to close the socket: until TCP gave up, minutes later,
    // and a stopping process spent its deadline here, never stopping its consumer.
    const started = Date.now();
    await withTimeout(listener.stop(), 10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('counts a connection that answers queries but hears no notifications as broken, so the feed never says it listens', async () => {
    const target = new URL(db.url);
    const proxy = await notificationDroppingProxy(target);
    cleanups.push(proxy.close);
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const listener = listenThrough(proxy.port, () => undefined, logger);
    await listener.start();
    // Before, LISTEN and every plain liveness query passed: listening, and deaf, for ever.
    await waitFor('the connection given up twice', () => warnings.filter((line) => /did not hear a notification sent to it within 5000 ms/.test(line)).length >= 2, { timeoutMs: 40_000 });
    expect(listener.listening).toBe(false);
  });

  it('sends its check from another session, so a connection that hears only what its own session notifies counts as broken too', async () => {
    // A pooler in transaction mode that runs the NOTIFY on the very server session that LISTENed.
    const target = new URL(db.url);
    const proxy = await notificationDroppingProxy(target, (senderPid, ownPid) => senderPid === ownPid);
    cleanups.push(proxy.close);
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const listener = listenThrough(proxy.port, () => undefined, logger);
    await listener.start();
    await waitFor('the connection given up', () => warnings.some((line) => /did not hear a notification sent to it/.test(line)), { timeoutMs: 30_000 });
    expect(listener.listening).toBe(false);
  });

  it('checks on the listening connection itself when no second one can be opened, says so, and keeps a working feed', async () => {
    const target = new URL(db.url);
    const proxy = await oneConnectionProxy(target);
    cleanups.push(proxy.close);
    const heard: Parameters<ChangeHandler>[0][] = [];
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const listener = listenThrough(proxy.port, (hunts) => heard.push(hunts), logger);
    await listener.start();
    await new Promise((resolve) => setTimeout(resolve, 3_500)); // several checks
    expect(listener.listening).toBe(true);
    expect(warnings).toHaveLength(1); // said once, not at every check
    expect(warnings[0]).toMatch(/could not open a second connection, and notified on the listening connection itself/);
    expect(warnings.some((line) => /connection lost/.test(line))).toBe(false);
    await notify('hunt-one-connection');
    await waitFor('the notification', () => heard.some((h) => Array.isArray(h) && h.includes('hunt-one-connection')));
  });

  it('keeps one connection and one retry loop through an outage of refused connections, trying at least every RETRY_MAX_MS', async () => {
    const target = new URL(db.url);
    const later = await portOpenedLater(target);
    cleanups.push(later.close);
    const applicationName = `change-feed-${process.pid}-${Date.now()}`;
    const heard: Parameters<ChangeHandler>[0][] = [];
    const retryWaits: number[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void retryWaits.push((JSON.parse(line) as { retryInMs: number }).retryInMs) });
    const listener = new ChangeListener(
      { host: '127.0.0.1', port: later.port, user: decodeURIComponent(target.username), password: decodeURIComponent(target.password), database: target.pathname.slice(1), application_name: applicationName },
      (hunts) => heard.push(hunts),
      logger,
    );
    cleanups.push(() => listener.stop());
    await listener.start(); // refused: retries after 250 ms, 500, 1 s, then every 2 s
    expect(listener.listening).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(listener.listening).toBe(false);
    // The waits doubled up to the cap, and stay there however long the outage lasts.
    expect(retryWaits.slice(0, 4)).toEqual([250, 500, 1000, RETRY_MAX_MS]);
    expect(Math.max(...retryWaits)).toBe(RETRY_MAX_MS);
    await later.open();
    await waitFor('the listener to be back', () => heard.includes(ALL_HUNTS), { timeoutMs: 15_000 });
    expect(listener.listening).toBe(true);
    // Long enough for any second retry loop to have connected too.
    await new Promise((resolve) => setTimeout(resolve, 9_000));

    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
    expect(rows[0]?.n).toBe(1);
    await notify('hunt-once');
    await waitFor('the notification', () => heard.some((h) => Array.isArray(h) && h.includes('hunt-once')));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(heard.filter((h) => Array.isArray(h) && h.includes('hunt-once'))).toHaveLength(1);
  }, 60_000);

  it('gives up a connect that a server accepts and never answers, and tries again', async () => {
    // A frozen primary or a route that drops packets: the socket opens, nothing comes back.
    const accepted: net.Socket[] = [];
    const silent = net.createServer((socket) => void accepted.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      accepted.forEach((socket) => socket.destroy());
      silent.close();
    });
    const listener = new ChangeListener(
      { host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port, user: 'nobody', database: 'nothing' },
      () => undefined,
      createLogger({ logLevel: 'fatal' }),
      { intervalMs: 200, timeoutMs: 300 },
    );
    cleanups.push(() => listener.stop());
    void listener.start();
    await waitFor('a second connect after the first went unanswered', () => accepted.length >= 2, { timeoutMs: 10_000 });
    expect(listener.listening).toBe(false);
  });
});
