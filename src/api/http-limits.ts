/**
 * The read API's protections against slow, idle and numerous clients, from configuration.
 * Node's defaults wait 60 s for headers and 5 min for a request and accept any number of
 * connections, so a few thousand slow sockets could hold the process; these are tighter.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
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

/**
 * A request Node's parser refuses (not HTTP, headers past their limit, too slow to arrive) gets
 * a JSON `{ "error": "..." }` like the API's other refusals (CONTRACT.md §2), where Node wrote a
 * bare status line; then the connection is closed, as Node does.
 */
export function answerMalformedRequests(server: http.Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node's own handler: nothing is written once an answer is under way on the connection
    // (a pipelined request before the broken one), which the refusal would corrupt.
    const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
    if (err.code === 'ECONNRESET' || !socket.writable || answering) return void socket.destroy();
    const [status, reason, message] = refusalOf(err.code);
    const body = JSON.stringify({ error: message });
    socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
}

function refusalOf(code: string | undefined): [number, string, string] {
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'Request Header Fields Too Large', 'the request headers are larger than the server takes'];
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'Request Timeout', 'the request did not arrive in time (API_HEADERS_TIMEOUT_MS, API_REQUEST_TIMEOUT_MS)'];
  return [400, 'Bad Request', 'the request is not valid HTTP/1.1'];
}

export function applyHttpLimits(server: http.Server, limits: HttpLimits, registry: Registry): void {
  answerMalformedRequests(server);
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
