/**
 * Embedded Temporal: the `temporal` CLI's dev server with its Web UI, state kept in a SQLite
 * file under the state folder so workflows survive restarts. The CLI is one on PATH, or built
 * once from its Go module into the cache folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { Config } from '../src/config';
import { explainTemporalError } from '../src/connection-hints';
import { temporalConnectionOptions, type TemporalConnectionOptions } from '../src/temporal/connection-options';
import { searchAttributeFlags } from '../src/temporal/search-attributes';
import { missingSearchAttributes } from '../src/temporal/search-attribute-check';
import { assertPortsFree, fetchWithRetries, onPath, runningPid, serviceEnvironment, servicePaths, startDetached, stopPid, waitUntil } from './process';
import { MissingToolError, type ServiceStatus, type StackService } from './service';

export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
/** The newest CLI tag whose go.mod has no `replace` directive, so `go install` can build it. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';

export class EmbeddedTemporal implements StackService {
  readonly name = 'temporal';
  private readonly paths;
  readonly logFile;

  constructor(private readonly config: Config) {
    this.paths = servicePaths(config.stack.stateDir, 'temporal');
    this.logFile = this.paths.logFile;
  }

  private get address(): string {
    return `127.0.0.1:${this.config.stack.temporal.port}`;
  }

  private get uiUrl(): string {
    return `http://127.0.0.1:${this.config.stack.temporal.uiPort}`;
  }

  async up(): Promise<ServiceStatus> {
    let pid = runningPid(this.paths.pidFile);
    if (pid === undefined) {
      await assertPortsFree(
        'Temporal',
        [
          { port: this.config.stack.temporal.port, variable: 'HUNT_TEMPORAL_PORT' },
          { port: this.config.stack.temporal.uiPort, variable: 'HUNT_TEMPORAL_UI_PORT' },
        ],
        'set TEMPORAL_ADDRESS to use that server',
      );
      const cli = await this.cliPath();
      const namespace = this.config.temporal.namespace;
      const args = [
        'server', 'start-dev',
        '--ip', '127.0.0.1',
        '--port', String(this.config.stack.temporal.port),
        '--ui-port', String(this.config.stack.temporal.uiPort),
        '--db-filename', path.join(this.paths.dir, 'temporal.db'),
        ...(namespace === 'default' ? [] : ['--namespace', namespace]),
        ...searchAttributeFlags.flatMap((flag) => ['--search-attribute', flag]),
        '--log-level', 'warn',
      ];
      pid = startDetached({
        command: cli,
        args,
        paths: this.paths,
        env: serviceEnvironment({ TEMPORAL_VERSION_CHECK_DISABLED: '1' }),
      });
    }
    await waitUntil('Temporal', async () => (await serverVersion({ address: this.address, tls: false }, namespace(this.config))) !== undefined && (await uiAnswers(this.uiUrl)), {
      timeoutMs: this.config.stack.timeoutMs,
      pid,
      logFile: this.logFile,
    });
    return this.status();
  }

  async down(): Promise<ServiceStatus> {
    const pid = runningPid(this.paths.pidFile);
    if (pid !== undefined) await stopPid(pid, 'SIGTERM');
    fs.rmSync(this.paths.pidFile, { force: true });
    return this.status();
  }

  async status(): Promise<ServiceStatus> {
    const pid = runningPid(this.paths.pidFile);
    const base = { name: this.name, mode: 'embedded' as const, address: this.address, pid, details: { 'Web UI': this.uiUrl } };
    if (pid === undefined) return { ...base, state: 'down' };
    try {
      const version = await serverVersion({ address: this.address, tls: false }, namespace(this.config));
      return { ...base, state: 'up', version: `Temporal Server ${version} (CLI ${TEMPORAL_CLI_VERSION} dev server)` };
    } catch (err) {
      return { ...base, state: 'down', error: (err as Error).message };
    }
  }

  /** A `temporal` on PATH, else the one built into the cache folder, else build it now. */
  private async cliPath(): Promise<string> {
    const existing = onPath('temporal');
    if (existing) return existing;
    const binDir = path.join(this.config.stack.cacheDir, 'temporal-cli', TEMPORAL_CLI_VERSION);
    const built = path.join(binDir, 'temporal');
    if (fs.existsSync(built)) return built;
    const go = onPath('go');
    if (!go) {
      throw new MissingToolError(
        'Go (to build the Temporal CLI)',
        'a Go toolchain 1.23+, or put a `temporal` CLI on PATH',
        'set TEMPORAL_ADDRESS to an existing Temporal server',
      );
    }
    const staging = `${binDir}.partial`;
    const emptyStaging = () => {
      fs.rmSync(staging, { recursive: true, force: true });
      fs.mkdirSync(staging, { recursive: true });
    };
    await fetchWithRetries('building the Temporal CLI from the Go module proxy', go, ['install', `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], {
      beforeEachAttempt: emptyStaging,
      // auto: a Go older than the CLI's go.mod asks for fetches that toolchain from the module
      // proxy (some distributions' Go defaults to local). install-system-packages.sh makes sure Go is 1.21+.
      env: { ...process.env, GOBIN: staging, CGO_ENABLED: '0', GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? 'auto' },
      // A cold build here took about 4 minutes.
      timeoutMs: 20 * 60_000,
    });
    fs.rmSync(binDir, { recursive: true, force: true });
    fs.renameSync(staging, binDir);
    return built;
  }
}

/** A Temporal given by TEMPORAL_ADDRESS: checked and given our search attributes, never started. */
export class ExternalTemporal implements StackService {
  readonly name = 'temporal';
  constructor(private readonly config: Config) {}

  async up(): Promise<ServiceStatus> {
    try {
      await ensureSearchAttributes(temporalConnectionOptions(this.config), namespace(this.config));
    } catch (err) {
      return { name: this.name, mode: 'external', address: this.config.temporal.address, state: 'down', error: describeFailure(err) };
    }
    return this.status();
  }

  down(): Promise<ServiceStatus> {
    return this.status();
  }

  async status(): Promise<ServiceStatus> {
    const base = { name: this.name, mode: 'external' as const, address: this.config.temporal.address };
    try {
      const version = await serverVersion(temporalConnectionOptions(this.config), namespace(this.config));
      return { ...base, state: 'up', version: `Temporal Server ${version}` };
    } catch (err) {
      return { ...base, state: 'down', error: describeFailure(err) };
    }
  }
}

function describeFailure(err: unknown): string {
  const hint = explainTemporalError(err);
  return hint ? `${hint} (${(err as Error).message})` : (err as Error).message;
}

function namespace(config: Config): string {
  return config.temporal.namespace;
}

/** The server's version, once the frontend answers and the namespace exists. */
async function serverVersion(options: TemporalConnectionOptions, ns: string): Promise<string> {
  const connection = await Connection.connect({ ...options, connectTimeout: 2000 });
  try {
    const info = await connection.workflowService.getSystemInfo({});
    await connection.workflowService.describeNamespace({ namespace: ns });
    return info.serverVersion ?? 'unknown';
  } finally {
    await connection.close();
  }
}

async function uiAnswers(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return res.ok;
}

/** Registers the project's search attributes on a server that lacks them. */
export async function ensureSearchAttributes(options: TemporalConnectionOptions, ns: string): Promise<void> {
  const connection = await Connection.connect({ ...options, connectTimeout: 5000 });
  try {
    const missing = await missingSearchAttributes(connection.operatorService, ns);
    if (missing.length === 0) return;
    const keyword = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
    await connection.operatorService.addSearchAttributes({
      namespace: ns,
      searchAttributes: Object.fromEntries(missing.map((name) => [name, keyword])),
    });
  } finally {
    await connection.close();
  }
}
