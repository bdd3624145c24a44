/**
 * The read API (CONTRACT.md section 2) on node:http: seven routes do not need a framework.
 *
 * Built to hold when clients misbehave: anything malformed (path, encoding, query) is a 400,
 * never a 500 or an error-level log line; slow and idle clients are cut off by timeouts and
 * a connection cap (http-limits.ts); reads use the API's own small pool whose queries have
 * a time limit, and a busy pool answers 503 at once rather than queueing without end.
 * Live streams are capped too (API_MAX_STREAMS), so they cannot take every connection; a
 * stream refused is told, in its own format, when to come back.
 */
import http from 'node:http';
import type net from 'node:net';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { ID_PATTERN } from '../constants';
import type { Logger } from '../log';
import { huntExists, leaderboardPage, playerEntry } from '../store/read/leaderboard';
import { holdAnswer, inTurn, isServedMethod, refusedBeforeMade, SERVED_METHODS, serverAnswers, UNREAD_REFUSAL } from './answer-budget';
import { createApiMetrics, routeLabel, type ApiMetrics, type RouteLabel } from './api-metrics';
import { isDatabaseUnreachable } from '../store/outage';
import { isOverload } from './database-errors';
import { applyHttpLimits, httpServerOptions, type HttpLimits } from './http-limits';
import { pathSegments } from './path-segments';
import { REFUSED_STREAM_RETRY_MS, refusedStreamBody, STREAM_HEADERS, type LeaderboardStreams } from './leaderboard-streams';
import { LIVE_PAGE_HEADERS, livePage } from './live-page';
import { opsReply } from './ops-server';
import type { CachedReply, ReplyCache } from './reply-cache';
import { everyFewSeconds } from './throttle';

export interface ApiDeps {
  /** The read API's own pool, never the commit lanes'. */
  pool: pg.Pool;
  /** Identical leaderboard reads share one query and its answer (reply-cache.ts). */
  leaderboardCache: ReplyCache;
  /** Live leaderboard streams (Server-Sent Events), fed by the hunt change feed. */
  streams: LeaderboardStreams;
  maxStreams: number;
  registry: Registry;
  logger: Logger;
  /** Postgres and Kafka reachable, consumer running and not stalled; `error` names the cause when not. */
  readiness: () => Promise<{ ready: boolean; checks: Record<string, string>; error?: string }>;
}

const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 1000;
/** Far above any valid route (two ids of 64 characters and a query): a longer target is abuse. */
const MAX_TARGET_LENGTH = 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export function createApiServer(deps: ApiDeps, limits: HttpLimits): http.Server {
  const metrics = createApiMetrics(deps.registry, () => deps.streams);
  // Warnings about load (busy pool, slow queries) and unexpected errors: one line per few
  // seconds at most, so a flood of requests cannot become a flood of log lines.
  const warnBusy = everyFewSeconds((count: number, err: unknown) =>
    deps.logger.warn({ err: String((err as Error)?.message ?? err), count }, 'read API answered 503: its Postgres pool is busy or a query hit API_STATEMENT_TIMEOUT_MS'),
  );
  const warnUnreachable = everyFewSeconds((count: number, err: unknown) =>
    deps.logger.warn({ err: String((err as Error)?.message ?? err), count }, 'read API answered 503: Postgres is unreachable or refused the connection'),
  );
  const reportUnexpected = everyFewSeconds((count: number, err: unknown, url: string) =>
    deps.logger.error({ err, url: url.slice(0, 200), count }, 'read API request failed'),
  );
  const warnCut = everyFewSeconds((count: number, why: string) => deps.logger.warn({ count, why }, 'read API closed a connection whose client left answers unread'));
  const warnRefused = everyFewSeconds((count: number, refusal: string) =>
    deps.logger.warn({ count, refusal }, 'read API answered 503: answers not yet read by their clients filled the budget of their connection, or of the server'),
  );
  const unreadAnswers = serverAnswers();
  const cut = (socket: net.Socket, why: string) => {
    if (socket.destroyed) return;
    metrics.connectionsCutUnread.inc();
    warnCut(why);
    socket.destroy();
  };
  const server = http.createServer(httpServerOptions(limits), (req, res) => {
    const label = routeLabel(req.url);
    if (label !== 'stream') {
      const timer = metrics.requestSeconds.startTimer({ route: label });
      res.once('finish', () => timer());
    }
    const answer = (status: number, body: unknown, contentType?: string, headers?: Record<string, string>) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      const refusal = holdAnswer(req, res, Buffer.byteLength(text), limits.requestTimeoutMs, cut, unreadAnswers);
      if (refusal === undefined) return send(res, metrics, label, status, text, contentType, headers);
      refuse(refusal);
    };
    const refuse = (refusal = UNREAD_REFUSAL) => {
      warnRefused(refusal);
      send(res, metrics, label, 503, JSON.stringify({ error: refusal }), 'application/json', { 'retry-after': '1' });
    };
    // A stream refused in the stream's own format, so that EventSource clients come back
    // (leaderboard-streams.ts, refusedStreamBody); counted apart from the 200s of served ones.
    const refuseStream = (reason: 'full' | 'pipelined', message: string) => {
      const text = refusedStreamBody(message);
      const refusal = holdAnswer(req, res, Buffer.byteLength(text), limits.requestTimeoutMs, cut, unreadAnswers);
      if (refusal !== undefined) return refuse(refusal);
      metrics.streamsRefused.inc({ reason });
      send(res, metrics, label, 200, text, STREAM_HEADERS['content-type'], { ...STREAM_HEADERS, 'retry-after': String(REFUSED_STREAM_RETRY_MS.min / 1000) });
    };
    const failed = (err: unknown) => {
      // An answer that could not be written (it throws only on a response already broken).
      reportUnexpected(err, req.url ?? '');
      req.socket.destroy();
    };
    inTurn(req, async () => {
      const refusal = refusedBeforeMade(req, res, limits.requestTimeoutMs, cut, unreadAnswers);
      if (refusal) return refuse(refusal);
      await route(deps, req)
        .then((reply) => {
          if ('stream' in reply) {
            // Checked here, in the tick that opens the stream: one queued behind another
            // response on its socket (res.socket is null) would wait behind an endless stream.
            if (!res.socket) return refuseStream('pipelined', 'a live stream cannot be pipelined behind another response: open it on a connection of its own');
            if (deps.streams.streams >= deps.maxStreams) return refuseStream('full', streamsFull(deps.maxStreams, reply.stream.huntId));
            metrics.responses.inc({ code: '200', route: label });
            // HEAD: the stream's headers, without a stream or a length.
            if (req.method === 'HEAD') return res.writeHead(200, STREAM_HEADERS).end();
            deps.streams.subscribe(reply.stream.huntId, reply.stream.limit, req, res);
          } else answer(reply.status, reply.body, reply.contentType, reply.headers);
        })
        .catch((err: unknown) => {
          if (err instanceof HttpError) return answer(err.status, { error: err.message }, 'application/json', err.headers);
          if (isOverload(err)) {
            warnBusy(err);
            return answer(503, { error: 'the read API is busy: try again shortly' }, 'application/json', { 'retry-after': '1' });
          }
          if (isDatabaseUnreachable(err)) {
            warnUnreachable(err);
            return answer(503, { error: 'the read API cannot reach its database: try again shortly' }, 'application/json', { 'retry-after': '5' });
          }
          reportUnexpected(err, req.url ?? '');
          answer(500, { error: 'internal error' });
        });
    }, failed);
  });
  applyHttpLimits(server, limits, deps.registry);
  return server;
}

type Reply = { status: number; body: unknown; contentType?: string; headers?: Record<string, string> };
type StreamReply = { stream: { huntId: string; limit: number } };

async function route(deps: ApiDeps, req: http.IncomingMessage): Promise<Reply | StreamReply> {
  if (!isServedMethod(req.method)) throw new HttpError(405, `only ${SERVED_METHODS} are served`, { allow: SERVED_METHODS });
  const { pathname, parts, query } = parseTarget(req.url ?? '');

  const ops = await opsReply(deps, pathname);
  if (ops) return ops;
  if (parts[0] === 'hunts' && parts.length === 3 && parts[2] === 'leaderboard') {
    allowOnly(query, ['limit']);
    const huntId = checkId('huntId', parts[1]);
    const limit = parseLimit(query.get('limit') ?? null);
    return deps.leaderboardCache.get(`${huntId}\n${limit}`, () => leaderboard(deps.pool, huntId, limit), huntId);
  }
  if (parts[0] === 'hunts' && parts.length === 4 && parts[2] === 'leaderboard' && parts[3] === 'stream') {
    allowOnly(query, ['limit']);
    const huntId = checkId('huntId', parts[1]);
    const limit = parseLimit(query.get('limit') ?? null);
    return { stream: { huntId, limit } };
  }
  if (parts[0] === 'hunts' && parts.length === 2) {
    allowOnly(query, []);
    return { status: 200, body: livePage(checkId('huntId', parts[1])), contentType: 'text/html; charset=utf-8', headers: LIVE_PAGE_HEADERS };
  }
  if (parts[0] === 'hunts' && parts.length === 4 && parts[2] === 'players') {
    allowOnly(query, []);
    return player(deps.pool, checkId('huntId', parts[1]), checkId('playerId', parts[3]));
  }
  throw new HttpError(404, `no route for ${pathname.length > 100 ? `${pathname.slice(0, 100)}...` : pathname}`);
}

/**
 * The request target split into path segments and query parameters, each percent-decoded;
 * 400 for anything that does not decode (a broken %-escape, invalid UTF-8), 414 for a target
 * no route could match. Only origin-form targets (`/path?query`) are served.
 */
export function parseTarget(target: string): { pathname: string; parts: string[]; query: Map<string, string> } {
  if (target.length > MAX_TARGET_LENGTH) throw new HttpError(414, `the request target is longer than ${MAX_TARGET_LENGTH} characters`);
  if (!target.startsWith('/')) throw new HttpError(400, 'the request target must be a path starting with /');
  const queryAt = target.indexOf('?');
  const pathname = queryAt < 0 ? target : target.slice(0, queryAt);
  const rawQuery = queryAt < 0 ? '' : target.slice(queryAt + 1);
  const parts = pathSegments(pathname);
  if (!parts) throw new HttpError(400, MALFORMED_ENCODING('path'));
  const query = new Map<string, string>();
  for (const pair of rawQuery.split('&').filter(Boolean)) {
    const eq = pair.indexOf('=');
    const name = decode(eq < 0 ? pair : pair.slice(0, eq), 'query');
    const value = eq < 0 ? '' : decode(pair.slice(eq + 1), 'query');
    if (query.has(name)) throw new HttpError(400, `query parameter '${printable(name)}' is given more than once`);
    query.set(name, value);
  }
  return { pathname, parts, query };
}

const MALFORMED_ENCODING = (where: 'path' | 'query') => `the ${where} has a malformed percent-encoding (each % must start a valid UTF-8 escape such as %2F)`;

function decode(text: string, where: 'query'): string {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    throw new HttpError(400, MALFORMED_ENCODING(where));
  }
}

/** A name from the request, fit to echo in a message: short, no control characters. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what this removes
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 40)}...` : clean;
}

function allowOnly(query: Map<string, string>, allowed: string[]): void {
  for (const name of query.keys()) {
    if (!allowed.includes(name)) {
      throw new HttpError(400, `unknown query parameter '${printable(name)}'${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ' (none are taken)'}`);
    }
  }
}

/** The body is a LeaderboardPage as JSON: live streams send the same object (leaderboard-streams.ts). */
async function leaderboard(pool: pg.Pool, huntId: string, limit: number): Promise<CachedReply> {
  const page = await leaderboardPage(pool, huntId, limit);
  if (!page) return { status: 404, body: JSON.stringify({ error: `unknown hunt '${huntId}'` }) };
  return { status: 200, body: JSON.stringify(page) };
}

async function player(pool: pg.Pool, huntId: string, playerId: string): Promise<Reply> {
  const entry = await playerEntry(pool, huntId, playerId);
  if (!entry) {
    const hunt = await huntExists(pool, huntId);
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
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_LIMIT) {
    throw new HttpError(400, `limit must be a whole number from 1 to ${MAX_LIMIT}, got '${printable(raw)}'`);
  }
  return Number(raw);
}

function streamsFull(maxStreams: number, huntId: string): string {
  return `this server has its most live streams open (API_MAX_STREAMS ${maxStreams}): poll /hunts/${huntId}/leaderboard or try again later`;
}

function send(res: http.ServerResponse, metrics: ApiMetrics, route: RouteLabel, status: number, text: string, contentType = 'application/json', headers: Record<string, string> = {}) {
  metrics.responses.inc({ code: String(status), route });
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
