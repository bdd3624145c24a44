/**
 * Plain-process lifecycle for the embedded stack: start detached with logs and a pid file,
 * check liveness, stop by pid. Only processes whose pid file we wrote are ever signalled.
 */
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { configVariableNames } from '../src/config';

export const execFileAsync = promisify(execFile);

export interface ServicePaths {
  dir: string;
  pidFile: string;
  logFile: string;
}

export function servicePaths(stateDir: string, name: string): ServicePaths {
  const dir = path.join(stateDir, name);
  return { dir, pidFile: path.join(dir, `${name}.pid`), logFile: path.join(dir, `${name}.log`) };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie has exited; only its parent has not collected it (in a container whose first
    // process reaps nothing, never): it answers signals, but runs no service.
    return procStatFields(pid)?.[3] !== 'Z';
  } catch (err) {
    // EPERM means the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM' && procStatFields(pid)?.[3] !== 'Z';
  }
}

/**
 * The pid recorded in the pid file, if that process still runs. The file also holds when the
 * process started: after a reboot (the state folder survives it) the pid may belong to an
 * unrelated process, which `stack up` would take for the service and `stack down` would signal.
 * A pid file of an older version, with the pid alone, is taken at its word. One that is not a
 * plain file is not, nor one of another user (not root's) naming a process that is not that
 * user's: the embedded Postgres's OS user could point one at any process, for `stack down` to
 * stop and `stack up` to wait on.
 */
export function runningPid(pidFile: string): number | undefined {
  let text: string;
  let owner: number;
  try {
    const fd = fs.openSync(pidFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      const found = fs.fstatSync(fd);
      if (!found.isFile()) return undefined;
      owner = found.uid;
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const [pidText, startedAt] = text.trim().split(/\s+/);
  const pid = Number.parseInt(pidText ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
  const me = process.geteuid?.();
  if (me !== undefined && owner !== me && owner !== 0 && processOwner(pid) !== owner) return undefined;
  const now = startTimeOf(pid);
  return startedAt !== undefined && now !== undefined && now !== startedAt ? undefined : pid;
}

/** What a pid file holds for `pid`: the pid and when its process started (runningPid). */
export function pidFileText(pid: number): string {
  const startedAt = startTimeOf(pid);
  return startedAt === undefined ? `${pid}\n` : `${pid} ${startedAt}\n`;
}

/** The user a process runs as (/proc/<pid>'s owner); undefined without /proc. */
function processOwner(pid: number): number | undefined {
  return fs.statSync(`/proc/${pid}`, { throwIfNoEntry: false })?.uid;
}

/** When a process started, in clock ticks since boot (/proc/<pid>/stat, field 22); undefined without /proc. */
export function startTimeOf(pid: number): string | undefined {
  return procStatFields(pid)?.[22];
}

/**
 * The fields of /proc/<pid>/stat by their numbers in proc(5) (1: pid, 2: comm, 3: state, 4:
 * ppid, ...), or undefined without such a process (or without /proc). The command name in
 * parentheses may hold spaces and parentheses: the fields after it are counted from its last ')'.
 */
export function procStatFields(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = stat.lastIndexOf(')');
  // Index 0 is left empty, so an index is the field's number.
  return ['', String(pid), stat.slice(stat.indexOf('(') + 1, close), ...stat.slice(close + 2).split(' ')];
}

export interface StartOptions {
  command: string;
  args: string[];
  paths: ServicePaths;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this OS user (needed for Postgres, which refuses to run as root). */
  user?: { uid: number; gid: number };
}

/** Fails with a clear message when a port we are about to bind is taken by someone else. */
export async function assertPortsFree(service: string, ports: { port: number; variable: string }[], alternative: string) {
  for (const { port, variable } of ports) {
    if (await portOpen(port)) {
      throw new Error(
        `${service} cannot start: port ${port} on 127.0.0.1 is in use by a process this stack did not start. ` +
          `Set ${variable} to a free port, or ${alternative}.`,
      );
    }
  }
}

const PROJECT_VARIABLES = new Set<string>(configVariableNames);

/**
 * The environment for a service this stack starts: this process's, without the project's
 * own configuration variables. Those may hold secrets of services that are not embedded
 * (DATABASE_URL, KAFKA_SASL_PASSWORD, TEMPORAL_API_KEY) which the embedded ones never need,
 * and a long-lived process's environment can be read in /proc/<pid>/environ (`ps e`).
 */
export function serviceEnvironment(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!PROJECT_VARIABLES.has(name)) env[name] = value;
  return { ...env, ...extra };
}

/** Starts a detached process that outlives this one, logging to the service's log file. */
export function startDetached(opts: StartOptions): number {
  fs.mkdirSync(opts.paths.dir, { recursive: true });
  // Both opened before the start: a file refused leaves no service running unrecorded.
  const log = openPlainFile(opts.paths.logFile, fs.constants.O_APPEND);
  let pidFile: number | undefined;
  try {
    pidFile = openPlainFile(opts.paths.pidFile, fs.constants.O_TRUNC);
    fs.writeSync(log, `\n--- ${new Date().toISOString()} starting: ${opts.command} ${opts.args.join(' ')}\n`);
    const child = spawn(opts.command, opts.args, {
      cwd: opts.cwd ?? opts.paths.dir,
      env: opts.env ?? serviceEnvironment(),
      detached: true,
      stdio: ['ignore', log, log],
      uid: opts.user?.uid,
      gid: opts.user?.gid,
    });
    if (child.pid === undefined) throw new Error(`could not start ${opts.command}`);
    child.unref();
    fs.writeSync(pidFile, pidFileText(child.pid));
    return child.pid;
  } finally {
    fs.closeSync(log);
    if (pidFile !== undefined) fs.closeSync(pidFile);
  }
}

/**
 * Opens a service's log or pid file for writing (`flags`: O_APPEND or O_TRUNC), created when
 * missing: only a plain file of this process's user. A stack started as root writes them,
 * and the embedded Postgres's folder was once its OS user's: a link that user left there
 * would have root write where it points, a pipe would hang the start for ever, and a pid file
 * of its own it could later point at any process for `stack down` to stop. A file of another
 * user is made anew; a link or anything else is refused.
 */
export function openPlainFile(file: string, flags: number): number {
  const found = fs.lstatSync(file, { throwIfNoEntry: false });
  if (found?.isSymbolicLink()) throw new Error(`${file} is a symbolic link: remove it (the stack writes its logs and pid files to plain files only)`);
  if (found && !found.isFile()) throw new Error(`${file} is not a plain file: remove it (the stack writes its logs and pid files to plain files only)`);
  if (found && found.uid !== process.geteuid?.()) fs.rmSync(file);
  return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK | flags, 0o644);
}

/** Sends `signal`, waits for exit, escalates to SIGKILL after `graceMs`. */
export async function stopPid(pid: number, signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000): Promise<void> {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      await sleep(200);
      return;
    }
    await sleep(100);
  }
}

/**
 * A fetch from a registry (Kafka's jars from Maven Central, the Temporal CLI from the Go
 * module proxy): tried `attempts` times, each within `timeoutMs`, with a longer pause after
 * each failure. A registry's hiccup on a new machine would otherwise end the whole set-up, and
 * a stalled download would hold it (and a CI run) until its own limit. The command must be
 * safe to run again: it writes to a staging folder that is renamed only once complete, and
 * `beforeEachAttempt` empties (an attempt killed mid-copy leaves a half-written file that a
 * copy skipping up-to-date files would keep).
 */
export async function fetchWithRetries(
  what: string,
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs: number; attempts?: number; pauseMs?: number; beforeEachAttempt?: () => void },
): Promise<void> {
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    try {
      options.beforeEachAttempt?.();
      await execFileAsync(file, args, { env: options.env, timeout: options.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 });
      return;
    } catch (err) {
      const e = err as { killed?: boolean; stderr?: string; stdout?: string; message: string };
      // Maven writes its errors, [ERROR] lines and all, to stdout; Go to stderr.
      const output = e.stderr?.trim() || e.stdout?.trim();
      const reason = e.killed ? `no result within ${Math.round(options.timeoutMs / 1000)} s` : (output || e.message).slice(-2000);
      if (attempt >= attempts) throw new Error(`${what} failed ${attempts} times; the last: ${reason}`, { cause: err });
      console.error(`${what} failed (try ${attempt} of ${attempts}), trying again: ${reason}`);
      await sleep((options.pauseMs ?? 10_000) * attempt);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A TCP port on 127.0.0.1 nothing listens on right now, for a server started later (by another
 * process, say). Taken below the kernel's range for outgoing connections (32768 and up on
 * Linux): a port of that range, released, could be any connection's local port by the time
 * the server listens on it (EADDRINUSE). Above 20,000, below the ports the tests' ingest
 * processes pick (30,000 and up).
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 100; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const server = net.createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) continue;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }
  throw new Error('no free port found between 20000 and 29999 in 100 tries');
}

/** True when something accepts TCP connections on host:port. */
export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Polls `check` until it resolves truthy. Fails with the last error and the log tail, so a
 * service that dies at start-up says why.
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; pid?: number; logFile?: string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (opts.pid !== undefined && !isAlive(opts.pid)) {
      throw new Error(`${what} exited during start-up.${logTail(opts.logFile)}`);
    }
    await sleep(250);
  }
  const reason = lastError instanceof Error ? ` Last error: ${lastError.message}.` : '';
  throw new Error(`${what} did not become healthy within ${opts.timeoutMs} ms.${reason}${logTail(opts.logFile)}`);
}

export function logTail(logFile: string | undefined, lines = 20): string {
  if (!logFile || !fs.existsSync(logFile)) return '';
  const text = fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  return `\nLast lines of ${logFile}:\n${text}`;
}

/** Which executable of that name is on PATH, if any. */
export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
