/**
 * The read API (CONTRACT.md section 2) on node:http: five routes do not need a framework.
 */
import http from 'node:http';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { ID_PATTERN } from '../events/schema';
import type { Logger } from '../log';
import { huntAsOf, playerEntry, topEntries } from '../store/leaderboard';

export interface ApiDeps {
  pool: pg.Pool;
  registry: Registry;
  logger: Logger;
  /** Postgres and Kafka reachable, consumer running and not stalled; `error` names the cause when not. */
  readiness: () => Promise<{ ready: boolean; checks: Record<string, string>; error?: string }>;
}

const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 1000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createApiServer(deps: ApiDeps): http.Server {
  return http.createServer((req, res) => {
    route(deps, req)
      .then(({ status, body, contentType }) => send(res, status, body, contentType))
      .catch((err: unknown) => {
        if (err instanceof HttpError) return send(res, err.status, { error: err.message });
        deps.logger.error({ err, url: req.url }, 'read API request failed');
        send(res, 500, { error: 'internal error' });
      });
  });
}

type Reply = { status: number; body: unknown; contentType?: string };

async function route(deps: ApiDeps, req: http.IncomingMessage): Promise<Reply> {
  if (req.method !== 'GET') throw new HttpError(405, 'only GET is served');
  const url = new URL(req.url ?? '/', 'http://localhost');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);

  if (url.pathname === '/healthz') return { status: 200, body: { status: 'ok' } };
  if (url.pathname === '/readyz') {
    const { ready, checks, error } = await deps.readiness();
    return { status: ready ? 200 : 503, body: ready ? { ready, checks } : { error, ready, checks } };
  }
  if (url.pathname === '/metrics') {
    return { status: 200, body: await deps.registry.metrics(), contentType: deps.registry.contentType };
  }
  if (parts[0] === 'hunts' && parts.length === 3 && parts[2] === 'leaderboard') {
    return leaderboard(deps.pool, checkId('huntId', parts[1]), parseLimit(url.searchParams.get('limit')));
  }
  if (parts[0] === 'hunts' && parts.length === 4 && parts[2] === 'players') {
    return player(deps.pool, checkId('huntId', parts[1]), checkId('playerId', parts[3]));
  }
  throw new HttpError(404, `no route for ${url.pathname}`);
}

async function leaderboard(pool: pg.Pool, huntId: string, limit: number): Promise<Reply> {
  const hunt = await huntAsOf(pool, huntId);
  if (!hunt) throw new HttpError(404, `unknown hunt '${huntId}'`);
  const entries = await topEntries(pool, huntId, limit);
  return { status: 200, body: { huntId, asOf: hunt.asOf?.toISOString() ?? null, entries } };
}

async function player(pool: pg.Pool, huntId: string, playerId: string): Promise<Reply> {
  const entry = await playerEntry(pool, huntId, playerId);
  if (!entry) {
    const hunt = await huntAsOf(pool, huntId);
    throw new HttpError(404, hunt ? `unknown player '${playerId}' in hunt '${huntId}'` : `unknown hunt '${huntId}'`);
  }
  return { status: 200, body: entry };
}

function checkId(name: string, value: string | undefined): string {
  if (value === undefined || !ID_PATTERN.test(value)) {
    throw new HttpError(400, `${name} must be 1-64 characters of [A-Za-z0-9_.-]`);
  }
  return value;
}

export function parseLimit(raw: string | null): number {
  if (raw === null) return DEFAULT_LIMIT;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LIMIT) {
    throw new HttpError(400, `limit must be a whole number from 1 to ${MAX_LIMIT}, got '${raw}'`);
  }
  return Number(raw);
}

function send(res: http.ServerResponse, status: number, body: unknown, contentType = 'application/json') {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
