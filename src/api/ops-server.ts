/**
 * /healthz, /readyz and /metrics: what an orchestrator and Prometheus ask. The read API serves
 * them on API_PORT, and with API_OPS_PORT set, on a listener of their own too, where the
 * public's connections cannot reach: 768 live streams and 256 keep-alive readers (each
 * answered) used up API_MAX_CONNECTIONS, and so did one client reopening 1,024 idle sockets;
 * every probe was then refused, a liveness probe restarted a healthy process, and Prometheus
 * saw the ingest as down and its stall gauge as absent.
 */
import http from 'node:http';
import type net from 'node:net';
import { Counter, type Registry } from 'prom-client';
import { holdAnswer, inTurn, isServedMethod, refusedBeforeMade, SERVED_METHODS, serverAnswers, UNREAD_REFUSAL } from './answer-budget';
import { answerMalformedRequests, httpServerOptions, type HttpLimits } from './http-limits';

/** Connections the ops listener keeps open at once: probes and scrapers, a handful each. */
export const OPS_MAX_CONNECTIONS = 64;

export interface OpsDeps {
  registry: Registry;
  readiness: () => Promise<{ ready: boolean; checks?: Record<string, string>; error?: string }>;
}

export interface OpsReply {
  status: number;
  body: unknown;
  contentType?: string;
}

/** The answer to an ops path, or undefined for any other path. */
export async function opsReply(deps: OpsDeps, pathname: string): Promise<OpsReply | undefined> {
  if (pathname === '/healthz') return { status: 200, body: { status: 'ok' } };
  if (pathname === '/readyz') {
    const { ready, checks, error } = await deps.readiness();
    return { status: ready ? 200 : 503, body: ready ? { ready, checks } : { error, ready, checks } };
  }
  if (pathname === '/metrics') return { status: 200, body: await deps.registry.metrics(), contentType: deps.registry.contentType };
  return undefined;
}

/**
 * The ops listener's server: GET and HEAD of the three paths, 404 for the rest, the read API's
 * timeouts and budget of unread answers (answer-budget.ts), its own connection cap.
 */
export function createOpsServer(deps: OpsDeps, limits: HttpLimits): http.Server {
  const cutUnread = new Counter({
    name: 'hunt_api_ops_connections_cut_unread_total',
    help: 'API_OPS_PORT connections closed because their client left an answer unread past API_REQUEST_TIMEOUT_MS',
    registers: [deps.registry],
  });
  const cut = (socket: net.Socket) => {
    if (socket.destroyed) return;
    cutUnread.inc();
    socket.destroy();
  };
  const unreadAnswers = serverAnswers();
  const server = http.createServer(httpServerOptions(limits), (req, res) => {
    const send = (status: number, body: unknown, contentType = 'application/json', headers: Record<string, string> = {}) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      const refusal = holdAnswer(req, res, Buffer.byteLength(text), limits.requestTimeoutMs, cut, unreadAnswers);
      if (refusal === undefined) return write(res, status, text, contentType, headers);
      refuse(refusal);
    };
    const refuse = (refusal = UNREAD_REFUSAL) => write(res, 503, JSON.stringify({ error: refusal }), 'application/json', { 'retry-after': '1' });
    inTurn(
      req,
      async () => {
        const refusal = refusedBeforeMade(req, res, limits.requestTimeoutMs, cut, unreadAnswers);
        if (refusal) return refuse(refusal);
        if (!isServedMethod(req.method)) return send(405, { error: `only ${SERVED_METHODS} are served` }, 'application/json', { allow: SERVED_METHODS });
        const pathname = (req.url ?? '').split('?')[0];
        await opsReply(deps, pathname ?? '').then(
          (reply) => (reply ? send(reply.status, reply.body, reply.contentType) : send(404, { error: 'this port serves /healthz, /readyz and /metrics' })),
          () => send(500, { error: 'internal error' }),
        );
      },
      // An answer that could not be written (it throws only on a response already broken): end the connection.
      () => req.socket.destroy(),
    );
  });
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  answerMalformedRequests(server);
  server.maxConnections = OPS_MAX_CONNECTIONS;
  return server;
}

function write(res: http.ServerResponse, status: number, text: string, contentType: string, headers: Record<string, string>) {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
