/**
 * The read API's protections against slow, idle and numerous clients, from configuration.
 * Node's defaults wait 60 s for headers and 5 min for a request and accept any number of
 * connections, so a few thousand slow sockets could hold the process; these are tighter.
 */
import type http from 'node:http';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config';

export type HttpLimits = Pick<
  Config['api'],
  'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs' | 'maxRequestsPerSocket' | 'maxConnections'
>;

/** Options only the server's constructor takes. */
export function httpServerOptions(limits: HttpLimits): http.ServerOptions {
  return {
    // A client has this long to send all its headers (never more than the whole request); then 408.
    headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
    requestTimeout: limits.requestTimeoutMs,
    // An idle keep-alive connection is closed after this.
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks the two timeouts above on this interval (default 30 s): keep it fine.
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs / 2),
  };
}

export function applyHttpLimits(server: http.Server, limits: HttpLimits, registry: Registry): void {
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  // Connections beyond the cap are closed at once, before a byte is read.
  server.maxConnections = limits.maxConnections;
  const refused = new Counter({
    name: 'hunt_api_connections_refused_total',
    help: 'Connections to the read API closed at once because API_MAX_CONNECTIONS were open',
    registers: [registry],
  });
  server.on('drop', () => refused.inc());
  new Gauge({
    name: 'hunt_api_connections',
    help: 'Open connections to the read API (at most API_MAX_CONNECTIONS)',
    registers: [registry],
    collect() {
      return new Promise<void>((resolve) =>
        server.getConnections((err, count) => {
          if (!err) this.set(count);
          resolve();
        }),
      );
    },
  });
}
