/**
 * Embedded Postgres: Debian's server binaries, a data directory under the state folder,
 * listening on 127.0.0.1 only. Postgres refuses to run as root, so as root it runs as the
 * `postgres` OS user that Debian's package creates.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Config } from '../src/config';
import { redactUrl } from '../src/redact';
import { pgClientConfig, type PostgresTarget } from '../src/store/pg-connection';
import { assertPortsFree, execFileAsync, runningPid, servicePaths, startDetached, stopPid, waitUntil } from './process';
import { MissingToolError, type ServiceStatus, type StackService } from './service';

const DATABASE = 'hunt';
const SUPERUSER = 'hunt';

export function findPostgresBinDir(configured?: string): string {
  const candidates = configured
    ? [configured]
    : listVersions('/usr/lib/postgresql').map((v) => path.join('/usr/lib/postgresql', v, 'bin'));
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, 'postgres')));
  if (!found) {
    throw new MissingToolError(
      configured ? `PostgreSQL server binaries in HUNT_PG_BIN_DIR=${configured}` : 'PostgreSQL server',
      "apt-get install postgresql, or set HUNT_PG_BIN_DIR to the folder holding 'postgres' and 'initdb'",
      'set DATABASE_URL to an existing server',
    );
  }
  return found;
}

/** Installed major versions, newest first. */
function listVersions(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
}

async function osUser(name: string): Promise<{ uid: number; gid: number }> {
  try {
    const uid = Number((await execFileAsync('id', ['-u', name])).stdout.trim());
    const gid = Number((await execFileAsync('id', ['-g', name])).stdout.trim());
    return { uid, gid };
  } catch {
    throw new MissingToolError(`OS user '${name}'`, 'apt-get install postgresql creates it', 'run as a non-root user, or set DATABASE_URL');
  }
}

/**
 * For tests of secured connections: a server that takes TLS (its certificate, key and the
 * CA it checks client certificates against), its own access rules (pg_hba.conf lines), and
 * a password for the superuser. The stack itself runs without them.
 */
export interface EmbeddedPostgresSecurity {
  tls?: { certFile: string; keyFile: string; caFile: string };
  hba?: string[];
  superuserPassword?: string;
}

export class EmbeddedPostgres implements StackService {
  readonly name = 'postgres';
  private readonly paths;
  readonly logFile;

  constructor(
    private readonly config: Config,
    private readonly security: EmbeddedPostgresSecurity = {},
  ) {
    this.paths = servicePaths(config.stack.stateDir, 'postgres');
    this.logFile = this.paths.logFile;
  }

  private get port(): number {
    return this.config.stack.postgres.port;
  }

  private get address(): string {
    return `postgres://${SUPERUSER}@127.0.0.1:${this.port}/${DATABASE}`;
  }

  async up(): Promise<ServiceStatus> {
    const binDir = findPostgresBinDir(this.config.stack.postgres.binDir);
    this.reclaimServiceFolder();
    let pid = runningPid(this.paths.pidFile);
    if (pid === undefined) {
      await assertPortsFree('Postgres', [{ port: this.port, variable: 'HUNT_PG_PORT' }], 'set DATABASE_URL to use that server');
      const user = process.getuid?.() === 0 ? await osUser('postgres') : undefined;
      const dataDir = await this.dataDir(user);
      await this.initIfNeeded(binDir, dataDir, user);
      pid = startDetached({
        command: path.join(binDir, 'postgres'),
        args: [
          '-D', dataDir,
          '-c', 'listen_addresses=127.0.0.1',
          '-c', `port=${this.port}`,
          '-c', 'unix_socket_directories=',
          '-c', 'max_connections=200',
          '-c', 'shared_buffers=256MB',
          '-c', 'max_wal_size=2GB',
          ...this.securitySettings(dataDir, user).flatMap((setting) => ['-c', setting]),
        ],
        paths: this.paths,
        user,
        cwd: dataDir,
      });
    }
    await waitUntil('Postgres', () => this.ping('postgres'), {
      timeoutMs: this.config.stack.timeoutMs,
      pid,
      logFile: this.logFile,
    });
    await this.ensureDatabase();
    return this.status();
  }

  async down(): Promise<ServiceStatus> {
    this.reclaimServiceFolder();
    const pid = runningPid(this.paths.pidFile);
    // SIGINT is Postgres's "fast" shutdown: clean, without waiting for clients to leave.
    if (pid !== undefined) await stopPid(pid, 'SIGINT');
    fs.rmSync(this.paths.pidFile, { force: true });
    return this.status();
  }

  async status(): Promise<ServiceStatus> {
    const pid = runningPid(this.paths.pidFile);
    const base = { name: this.name, mode: 'embedded' as const, address: this.address, pid };
    if (pid === undefined) return { ...base, state: 'down' };
    try {
      const postgres = { password: this.security.superuserPassword, tls: { mode: this.security.tls ? ('require' as const) : ('disable' as const) } };
      return { ...base, state: 'up', version: await serverVersion({ databaseUrl: this.address, postgres }) };
    } catch (err) {
      return { ...base, state: 'down', error: (err as Error).message };
    }
  }

  /**
   * As root, the service's folder back to root before anything in it is read or trusted. Only
   * its data folder is the server's user's: the log and pid files root writes must not sit
   * where another user can replace them, and an older version gave the folder to that user.
   */
  private reclaimServiceFolder(): void {
    if (process.getuid?.() === 0 && fs.existsSync(this.paths.dir)) fs.chownSync(this.paths.dir, 0, 0);
  }

  /**
   * The data directory. As root it must be reachable by the `postgres` user; when the
   * state folder is not (say, under a private home), a folder in Postgres's own home is used.
   */
  private async dataDir(user?: { uid: number; gid: number }): Promise<string> {
    const preferred = path.join(this.paths.dir, 'data');
    fs.mkdirSync(this.paths.dir, { recursive: true });
    if (!user) return preferred;
    // The service's folder itself stays root's (reclaimServiceFolder, in up).
    const reachable = await execFileAsync('test', ['-x', this.paths.dir], { uid: user.uid, gid: user.gid })
      .then(() => true)
      .catch(() => false);
    if (reachable) return preferred;
    const key = crypto.createHash('sha256').update(this.paths.dir).digest('hex').slice(0, 12);
    // Made by the server's user itself, in its own home: root making folders there (and
    // handing them over) would follow whatever links that user left in their place.
    const home = '/var/lib/postgresql';
    if (!fs.existsSync(home)) {
      fs.mkdirSync(home, { recursive: true, mode: 0o755 });
      fs.chownSync(home, user.uid, user.gid);
    }
    const fallback = path.join(home, 'treasure-hunt', key);
    await execFileAsync('mkdir', ['-p', '-m', '700', fallback], { uid: user.uid, gid: user.gid }).catch((err: Error) => {
      throw new Error(`the postgres user cannot make its data folder ${fallback} (${err.message.trim()}): give it ${home}, or clone the project where it can reach it`, { cause: err });
    });
    fs.writeFileSync(path.join(this.paths.dir, 'DATA_DIR'), `${fallback}\n`);
    return fallback;
  }

  private async initIfNeeded(binDir: string, dataDir: string, user?: { uid: number; gid: number }) {
    if (fs.existsSync(path.join(dataDir, 'PG_VERSION'))) return;
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (user) chownFolder(dataDir, user);
    // initdb wants an empty data folder: the password file sits in a private folder of its own.
    const passwordDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-initdb-'));
    const passwordFile = path.join(passwordDir, 'password');
    if (this.security.superuserPassword !== undefined) fs.writeFileSync(passwordFile, `${this.security.superuserPassword}\n`, { mode: 0o600 });
    if (user && fs.existsSync(passwordFile)) {
      fs.chownSync(passwordDir, user.uid, user.gid);
      fs.chownSync(passwordFile, user.uid, user.gid);
    }
    // C collation: text sorts by byte order, which is what the contract's tie-breaks use.
    await execFileAsync(
      path.join(binDir, 'initdb'),
      ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '--encoding=UTF8', '--locale=C', ...(fs.existsSync(passwordFile) ? [`--pwfile=${passwordFile}`] : [])],
      { uid: user?.uid, gid: user?.gid, cwd: dataDir },
    ).finally(() => fs.rmSync(passwordDir, { recursive: true, force: true }));
  }

  /**
   * `-c` settings for TLS and access rules. The files are copied into the data folder, owned
   * by the server's user: Postgres refuses a key file others can read.
   */
  private securitySettings(dataDir: string, user?: { uid: number; gid: number }): string[] {
    const settings: string[] = [];
    const place = (name: string, from: string | undefined, text?: string) => {
      const to = path.join(dataDir, name);
      // In a folder of the server's user: made anew, never through what is at the path (a link
      // that user left there would have root write, or hand over, a file of its choice).
      fs.rmSync(to, { force: true });
      const fd = fs.openSync(to, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      try {
        fs.fchmodSync(fd, 0o600);
        if (user) fs.fchownSync(fd, user.uid, user.gid);
        fs.writeFileSync(fd, text ?? fs.readFileSync(from as string));
      } finally {
        fs.closeSync(fd);
      }
      return to;
    };
    const { tls, hba } = this.security;
    if (tls) {
      settings.push('ssl=on', `ssl_cert_file=${place('server.crt', tls.certFile)}`, `ssl_key_file=${place('server.key', tls.keyFile)}`, `ssl_ca_file=${place('root.crt', tls.caFile)}`);
    }
    if (hba) settings.push(`hba_file=${place('pg_hba.test.conf', undefined, `${hba.join('\n')}\n`)}`);
    return settings;
  }

  /** How `up` and `status` reach the server themselves: with the password, over TLS when it has it. */
  private adminClient(database: string): pg.Client {
    const { tls, superuserPassword } = this.security;
    return quietOnError(
      new pg.Client({
        host: '127.0.0.1',
        port: this.port,
        user: SUPERUSER,
        database,
        password: superuserPassword,
        ssl: tls ? { rejectUnauthorized: false } : false,
      }),
    );
  }

  private async ping(database: string): Promise<boolean> {
    const client = this.adminClient(database);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private async ensureDatabase(): Promise<void> {
    const client = this.adminClient('postgres');
    await client.connect();
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
      if (rowCount === 0) await client.query(`CREATE DATABASE ${DATABASE}`);
    } finally {
      await client.end();
    }
  }
}

/** A Postgres given by DATABASE_URL: checked, never started or stopped. */
export class ExternalPostgres implements StackService {
  readonly name = 'postgres';
  constructor(private readonly target: PostgresTarget) {}

  up(): Promise<ServiceStatus> {
    return this.status();
  }

  down(): Promise<ServiceStatus> {
    return this.status();
  }

  async status(): Promise<ServiceStatus> {
    const base = { name: this.name, mode: 'external' as const, address: redactUrl(this.target.databaseUrl) };
    try {
      return { ...base, state: 'up', version: await serverVersion(this.target) };
    } catch (err) {
      return { ...base, state: 'down', error: (err as Error).message };
    }
  }
}

async function serverVersion(target: PostgresTarget): Promise<string> {
  const client = quietOnError(new pg.Client({ ...pgClientConfig(target), connectionTimeoutMillis: 3000 }));
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return `PostgreSQL ${rows[0]?.v ?? '?'}`;
  } finally {
    await client.end();
  }
}

/**
 * pg emits 'error' on a connection lost under a query (a server restarting during `stack up`
 * or `status`) besides failing the query: with no listener, that is an uncaught exception,
 * and the command died with a stack trace instead of reporting the server down.
 */
function quietOnError(client: pg.Client): pg.Client {
  client.on('error', () => undefined);
  return client;
}

/** Gives a folder to `user`, refusing a link in its place (chown would follow it). */
function chownFolder(folder: string, user: { uid: number; gid: number }): void {
  const fd = fs.openSync(folder, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  try {
    fs.fchownSync(fd, user.uid, user.gid);
  } finally {
    fs.closeSync(fd);
  }
}
