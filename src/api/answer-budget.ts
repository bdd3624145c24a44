/**
 * Answers their clients have to take, on the read API and the ops port alike. Pipelined
 * requests are answered in order, so a client that writes hundreds in one go and reads
 * nothing leaves every answer in this process (a review measured 65 MB a connection on the
 * read API, and a gigabyte over the ops port's 64 connections asking for /metrics, with its
 * probes refused). So each answer has the request timeout to be taken, after which its
 * connection is cut, and counts against its connection's budget of unread answers, past
 * which a request gets a short 503 instead (one answer always goes). Answers are counted as
 * they are made, before the client could take any: a few of the largest leaderboards (1000
 * entries, up to about 200 KB) pipelined at once pass.
 */
import type http from 'node:http';
import type net from 'node:net';

export const MAX_UNREAD_BYTES_PER_CONNECTION = 512 * 1024;
/**
 * All connections of one server together. Per connection alone, the read API's 1024
 * connections could hold over half a gigabyte of answers nobody reads, in the process that
 * runs the hot path; this is a few hundred of the largest leaderboards in flight at once.
 */
export const MAX_UNREAD_BYTES_PER_SERVER = 64 * 1024 * 1024;

/** The body of the 503 a request gets when its connection holds its budget unread. */
export const UNREAD_REFUSAL = `this connection holds ${MAX_UNREAD_BYTES_PER_CONNECTION / 1024} KB of answers not yet read: read them, then ask again (or use another connection)`;
/** The body of the 503 a request gets when the server's connections together hold their budget unread. */
export const SERVER_UNREAD_REFUSAL = `this server holds ${MAX_UNREAD_BYTES_PER_SERVER / 1024 / 1024} MB of answers its clients have not read yet: try again shortly`;

/** The answers one server's connections hold unread, together. */
export interface ServerAnswers {
  held: number;
  readonly maxBytes: number;
}

export function serverAnswers(maxBytes = MAX_UNREAD_BYTES_PER_SERVER): ServerAnswers {
  return { held: 0, maxBytes };
}

/** What a connection holds unread, counted in its server's total too until the connection closes. */
interface ConnectionAnswers {
  held: number;
  closed: boolean;
}

const connections = new WeakMap<net.Socket, ConnectionAnswers>();

/**
 * `socket`'s count, made on its first answer. Its close takes back from the server all the
 * connection still holds: Node 20 never emits 'close' on the answers queued behind the one
 * being sent when their connection dies, so counted per answer only, they stayed in the
 * server's total for good, and a few cut connections of pipelined reads left it full.
 */
function connectionOf(socket: net.Socket, server: ServerAnswers): ConnectionAnswers {
  let connection = connections.get(socket);
  if (!connection) {
    const made = { held: 0, closed: false };
    connection = made;
    connections.set(socket, made);
    socket.once('close', () => {
      server.held -= made.held;
      made.held = 0;
      made.closed = true;
    });
  }
  return connection;
}

/**
 * Arms the deadline by which the answer on `res` must be taken (`cut` closes its connection
 * then, saying why) and counts its `bytes` against the connection's unread answers, and the
 * server's, until it is done. Undefined when held; else, with nothing counted, the text of the
 * short refusal to send instead: the answer would pass the connection's budget and is not its
 * only answer (a client that reads takes the refusal and asks again; one that does not is cut
 * at the deadline), or the server's connections together hold theirs.
 */
export function holdAnswer(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  bytes: number,
  deadlineMs: number,
  cut: (socket: net.Socket, why: string) => void,
  server: ServerAnswers,
): string | undefined {
  armAnswerDeadline(req, res, deadlineMs, cut);
  const socket = req.socket;
  // Its client left while the answer was made: the write goes nowhere, and a count taken now
  // would never be given back (its 'close' came and went).
  if (socket.destroyed) return undefined;
  const connection = connectionOf(socket, server);
  if (connection.held > 0 && connection.held + bytes > MAX_UNREAD_BYTES_PER_CONNECTION) {
    refusedSinceTaken.add(socket);
    return UNREAD_REFUSAL;
  }
  // Not marked refused: the connection did nothing wrong, and its next request may fit.
  if (server.held + bytes > server.maxBytes) return SERVER_UNREAD_REFUSAL;
  connection.held += bytes;
  server.held += bytes;
  res.once('close', () => {
    refusedSinceTaken.delete(socket);
    if (connection.closed) return; // its close took it back
    connection.held -= bytes;
    server.held -= bytes;
  });
  return undefined;
}

/** Closes `req`'s connection (`cut`) unless the answer on `res` is taken within `deadlineMs`. */
function armAnswerDeadline(req: http.IncomingMessage, res: http.ServerResponse, deadlineMs: number, cut: (socket: net.Socket, why: string) => void): void {
  const deadline = setTimeout(() => cut(req.socket, `an answer not taken within API_REQUEST_TIMEOUT_MS (${deadlineMs} ms)`), deadlineMs);
  res.once('close', () => clearTimeout(deadline));
}

/** Connections that had an answer refused and have taken none since. */
const refusedSinceTaken = new WeakSet<net.Socket>();

/**
 * The refusal an answer on `req`'s connection would get whatever it is, so it need not be
 * made: the connection holds its whole budget unread, or its last answer was refused and it has
 * taken none since (an answer as large would be refused again; a smaller one might have fit,
 * and gets the refusal to ask again), or the server's connections together hold theirs. When
 * so, the refusal the caller sends next is held to the same deadline as any answer: a client
 * that reads none of them is cut.
 */
export function refusedBeforeMade(req: http.IncomingMessage, res: http.ServerResponse, deadlineMs: number, cut: (socket: net.Socket, why: string) => void, server: ServerAnswers): string | undefined {
  const socket = req.socket;
  const connectionFull = (connections.get(socket)?.held ?? 0) >= MAX_UNREAD_BYTES_PER_CONNECTION || refusedSinceTaken.has(socket);
  const refusal = connectionFull ? UNREAD_REFUSAL : server.held >= server.maxBytes ? SERVER_UNREAD_REFUSAL : undefined;
  if (refusal) armAnswerDeadline(req, res, deadlineMs, cut);
  return refusal;
}

const answering = new WeakMap<net.Socket, Promise<void>>();

/**
 * Makes the answer of a request once the answers of the requests before it on its connection
 * are made. Pipelined requests are answered in their order anyway, so making their answers at
 * once bought a client nothing and cost the process: a burst of /metrics requests was built
 * whole, each, and then refused by the budget (milliseconds of CPU apiece, in the process that
 * runs the hot path), and one connection's lookups could take every pooled Postgres
 * connection. In turn, a request that finds the budget full (refusedBeforeMade) is refused before its
 * answer is made, and the turns of a connection its client has closed are skipped. A turn that
 * throws goes to `failed` (the next turn runs still).
 */
export function inTurn(req: http.IncomingMessage, make: () => Promise<void>, failed: (err: unknown) => void): void {
  const socket = req.socket;
  const mine = (answering.get(socket) ?? Promise.resolve()).then(() => (socket.destroyed ? undefined : make())).catch(failed);
  answering.set(socket, mine);
}

/** The methods every route serves: HEAD is GET without the body (Node leaves it out). */
export const SERVED_METHODS = 'GET, HEAD';

export function isServedMethod(method: string | undefined): boolean {
  return method === 'GET' || method === 'HEAD';
}
