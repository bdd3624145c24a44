/**
 * Runs the real `hunt` command (`node bin/hunt.js ...`) as a child and collects everything it
 * prints: for tests of what a command says, and of what it must never say.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../src/config';

export interface HuntRun {
  /** Exit code; null when it was still running at the deadline and got SIGKILL. */
  code: number | null;
  timedOut: boolean;
  /** stdout and stderr, interleaved as they arrived. */
  output: string;
  /** stdout alone: what a command prints for a program to read (`--json`). */
  stdout: string;
}

export function runHunt(args: string[], env: Record<string, string | undefined>, timeoutMs = 60_000): Promise<HuntRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('node', [path.join(projectRoot, 'bin/hunt.js'), ...args], {
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, timedOut, output, stdout });
    });
  });
}

export { freePort } from '../../infra/process';
