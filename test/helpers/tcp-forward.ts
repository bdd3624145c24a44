/**
 * A service that comes up late, for start-up tests: a port nothing listens on until the test
 * opens it, then forwarding every connection to the real service's address.
 */
import net from 'node:net';
import { freePort } from '../../infra/process';

export { freePort };

/** From then on, `port` forwards every connection to `target` (host:port). */
export interface Forwarder {
  /** From now on nothing passes either way, and the connections stay open: a service that stops answering without a word. */
  freeze(): void;
  /**
   * The connections open now stop passing anything either way and stay open, while new ones
   * are forwarded: connections a NAT or load balancer dropped without a word, to a server
   * that is fine.
   */
  freezeOpen(): void;
  /** Cuts every connection and stops listening. */
  close(): Promise<void>;
}

export interface ForwardOptions {
  /** Each direction of each connection passes at most this many bytes a second: a slow link. */
  bytesPerSecond?: number;
}

export async function forwardPort(port: number, target: string, options: ForwardOptions = {}): Promise<Forwarder> {
  const separator = target.lastIndexOf(':');
  const host = target.slice(0, separator);
  const targetPort = Number(target.slice(separator + 1));
  const sockets = new Set<net.Socket>();
  const relays = new Set<Relay>();
  let frozen = false;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (frozen) return;
    const upstream = net.connect(targetPort, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    if (options.bytesPerSecond === undefined) client.pipe(upstream).pipe(client);
    else for (const [from, to] of [[client, upstream], [upstream, client]] as const) relays.add(throttledRelay(from, to, options.bytesPerSecond));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const freezeOpen = () => {
    for (const relay of relays) relay.stop();
    relays.clear();
    for (const socket of sockets) {
      socket.unpipe();
      socket.pause();
    }
  };
  return {
    freeze() {
      frozen = true;
      freezeOpen();
    },
    freezeOpen,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/** A forwarder to the database of `databaseUrl`, on a port of its own, and the URL that goes through it. */
export async function forwardDatabase(databaseUrl: string, options: ForwardOptions = {}): Promise<{ forwarder: Forwarder; url: string }> {
  const target = new URL(databaseUrl);
  const port = await freePort();
  const forwarder = await forwardPort(port, `${target.hostname}:${target.port}`, options);
  const through = new URL(databaseUrl);
  through.port = String(port);
  return { forwarder, url: through.toString() };
}

interface Relay {
  stop(): void;
}

/** Copies `from` to `to` at most `bytesPerSecond`, in slices every 20 ms, holding `from` back meanwhile. */
function throttledRelay(from: net.Socket, to: net.Socket, bytesPerSecond: number): Relay {
  const tickMs = 20;
  const perTick = Math.max(1, Math.floor((bytesPerSecond * tickMs) / 1000));
  const queue: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const pump = () => {
    timer = undefined;
    if (stopped) return;
    let budget = perTick;
    while (budget > 0 && queue.length > 0) {
      const head = queue[0]!;
      const part = head.subarray(0, budget);
      to.write(part);
      budget -= part.length;
      if (part.length === head.length) queue.shift();
      else queue[0] = head.subarray(part.length);
    }
    if (queue.length > 0) timer = setTimeout(pump, tickMs);
    else from.resume();
  };
  from.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    from.pause();
    timer ??= setTimeout(pump, tickMs);
  });
  from.on('end', () => to.end());
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
