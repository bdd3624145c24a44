/**
 * The real ingest (`node bin/hunt.js ingest`) as a child process pointed at the bench's own
 * database, topic and group: the benchmark measures the shipped command, not a copy of it.
 * Its logs go to a file; warnings and errors are kept for the report.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/config';
import { freePort } from './resources';

export interface IngestChildOptions {
  databaseUrl: string;
  topic: string;
  groupId: string;
  logFile: string;
  /** Write a V8 CPU profile into this folder when the child exits. */
  cpuProfileDir?: string;
  /** Extra environment, e.g. INGEST_* knobs. */
  env?: Record<string, string>;
}

export class IngestChild {
  readonly startedAt = performance.now();
  private exited: Promise<number | null>;
  private readonly logLines: string[] = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly apiUrl: string,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(options: IngestChildOptions): Promise<IngestChild> {
    const port = await freePort();
    const nodeArgs = options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : [];
    fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
    const log = fs.createWriteStream(options.logFile);
    const child = spawn(process.execPath, [...nodeArgs, path.join(projectRoot, 'bin/hunt.js'), 'ingest'], {
      cwd: projectRoot,
      env: {
        ...process.env,
        DATABASE_URL: options.databaseUrl,
        KAFKA_TOPIC_EVENTS: options.topic,
        KAFKA_TOPIC_DLQ: `${options.topic}.dlq`,
        INGEST_GROUP_ID: options.groupId,
        API_PORT: String(port),
        LOG_LEVEL: 'warn',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const handle = new IngestChild(child, `http://127.0.0.1:${port}`, options.logFile);
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        log.write(chunk);
        handle.collect(chunk.toString('utf8'));
      });
    }
    void handle.exited.then(() => log.end());
    return handle;
  }

  /** True once the process has ended, e.g. because it failed at start-up. */
  get hasExited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Log lines at warn or above (pino level >= 40) and anything that is not JSON. */
  get warnings(): string[] {
    return this.logLines;
  }

  private collect(text: string): void {
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
        if ((entry.level ?? 0) >= 40) this.logLines.push(`${entry.level === 40 ? 'WARN' : 'ERROR'} ${entry.msg ?? ''}${entry.err?.message ? `: ${entry.err.message}` : ''}`);
      } catch {
        this.logLines.push(line);
      }
    }
  }

  /** Milliseconds from spawn until /readyz answers 200. */
  async waitReady(timeoutMs = 60_000): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const ok = await fetch(`${this.apiUrl}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return performance.now() - this.startedAt;
      if (this.child.exitCode !== null) throw new Error(`ingest child exited with ${this.child.exitCode}; see its log`);
      await sleep(25);
    }
    throw new Error(`ingest child not ready within ${timeoutMs} ms`);
  }

  async metricsText(): Promise<string> {
    const response = await fetch(`${this.apiUrl}/metrics`);
    return response.text();
  }

  /**
   * SIGTERM (graceful: finishes the batch in flight); a second SIGTERM makes `hunt ingest`
   * call process.exit, which still writes the CPU profile; SIGKILL only as the last resort.
   */
  async stop(graceMs = 15_000): Promise<{ code: number | null; escalated: string | undefined }> {
    if (this.child.exitCode !== null) return { code: this.child.exitCode, escalated: undefined };
    let escalated: string | undefined;
    this.child.kill('SIGTERM');
    const second = setTimeout(() => {
      escalated = 'second SIGTERM';
      this.child.kill('SIGTERM');
    }, graceMs);
    const last = setTimeout(() => {
      escalated = 'SIGKILL';
      this.child.kill('SIGKILL');
    }, graceMs + 5000);
    const code = await this.exited;
    clearTimeout(second);
    clearTimeout(last);
    return { code, escalated };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
