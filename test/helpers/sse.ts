/**
 * A small Server-Sent Events client for tests and benchmarks: connects with node:http,
 * parses events and comments as they arrive, and keeps them with their arrival time.
 */
import http from 'node:http';

export interface SseEvent {
  event: string;
  data: string;
  at: number;
}

export interface SseConnection {
  status: Promise<number>;
  events: SseEvent[];
  comments: number;
  /** Resolves with the next event (or the one already there past `after`). */
  next(after?: number, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
}

export function connectSse(url: string, agent?: http.Agent): SseConnection {
  const events: SseEvent[] = [];
  const waiters: (() => void)[] = [];
  let statusResolve: (code: number) => void = () => undefined;
  const status = new Promise<number>((resolve) => (statusResolve = resolve));
  const conn: SseConnection = {
    status,
    events,
    comments: 0,
    next(after = events.length, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const event = events[after];
          if (event) {
            clearTimeout(timer);
            resolve(event);
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => reject(new Error(`no SSE event #${after} from ${url} within ${timeoutMs} ms`)), timeoutMs);
        if (check()) return;
        const waiter = () => {
          if (!check()) waiters.push(waiter);
        };
        waiters.push(waiter);
      });
    },
    close: () => request.destroy(),
  };
  const request = http.get(url, { agent }, (res) => {
    statusResolve(res.statusCode ?? 0);
    res.setEncoding('utf8');
    let buffer = '';
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        let isComment = true;
        for (const line of frame.split('\n')) {
          if (line.startsWith(':')) continue;
          isComment = false;
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (isComment) conn.comments++;
        else if (data.length > 0) events.push({ event, data: data.join('\n'), at: Date.now() });
        for (const wake of waiters.splice(0)) wake();
      }
    });
  });
  request.on('error', () => statusResolve(0));
  return conn;
}
