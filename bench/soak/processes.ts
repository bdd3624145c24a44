/**
 * The soak's pipeline as real processes: two `hunt ingest` in one consumer group and one
 * `hunt worker`, each restartable after a kill -9, with their logs kept and their resident
 * memory readable from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/config';
import { soakEnv } from './stack';

export class SoakProcess {
  private child: ChildProcess | undefined;
  restarts = 0;
  /** True while a planned crash holds the process down (the supervisor must not start it). */
  held = false;
  private static readonly all = new Set<SoakProcess>();

  constructor(
    readonly name: string,
    private readonly command: 'ingest' | 'worker',
    private readonly env: Record<string, string>,
    private readonly logFile: string,
  ) {}

  start(): void {
    if (this.alive) return;
    SoakProcess.all.add(this);
    fs.mkdirSync(path.dirname(this.logFile), { recursive: true });
    const log = fs.openSync(this.logFile, 'a');
    this.child = spawn(process.execPath, [path.join(projectRoot, 'bin/hunt.js'), this.command], {
      cwd: projectRoot,
      env: { ...process.env, ...soakEnv(), LOG_LEVEL: 'warn', ...this.env },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** kill -9, then start again after `downMs`. */
  async crash(downMs: number): Promise<void> {
    this.held = true;
    try {
      await this.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, downMs));
      this.restarts++;
      this.start();
    } finally {
      this.held = false;
    }
  }

  /** Kills every process started here (on exit or interrupt: none may outlive the soak). */
  static killAll(): void {
    for (const p of SoakProcess.all) p.child?.kill('SIGKILL');
  }

  /** Sends `signal` and waits for the exit; a process still alive after `graceMs` is killed with SIGKILL. */
  async kill(signal: NodeJS.Signals, graceMs = 20_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const escalate = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(escalate);
  }

  /** Resident memory in bytes, or undefined when not running. */
  rss(): number | undefined {
    if (!this.alive || !this.pid) return undefined;
    try {
      const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    } catch {
      return undefined;
    }
  }
}
