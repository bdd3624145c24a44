/**
 * `hunt start` watches the embedded services it runs on (infra/stack.ts, watchEmbedded): one
 * whose process is gone stops the command, naming it and its log, instead of leaving the
 * pipeline running half broken.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAlive, procStatFields } from '../../infra/process';
import { watchEmbedded } from '../../infra/stack';
import { loadConfig } from '../../src/config';
import { waitFor } from '../helpers/wait';

describe('isAlive', () => {
  it('takes a zombie (exited, not yet collected by its parent) for gone', async () => {
    // A child that exits once its parent has become `sleep`, which never collects it. The child
    // waits for a byte on fd 3: a shell reaps a child that exits before it execs, leaving no
    // zombie (about a third of the time on a busy machine).
    const parent = spawn('sh', ['-c', 'head -c 1 <&3 >/dev/null & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore', 'pipe'] });
    try {
      const pid = Number(await new Promise<string>((resolve) => (parent.stdout as NodeJS.ReadableStream).once('data', (chunk: Buffer | string) => resolve(chunk.toString().trim()))));
      await waitFor('the parent to have become sleep', () => procStatFields(parent.pid as number)?.[2] === 'sleep', { timeoutMs: 10_000, intervalMs: 20 });
      expect(isAlive(pid)).toBe(true);
      (parent.stdio[3] as NodeJS.WritableStream).write('x');
      await waitFor('the child to have exited', () => procStatFields(pid)?.[3] === 'Z', { timeoutMs: 10_000, intervalMs: 20 });
      expect(isAlive(pid)).toBe(false);
      expect(isAlive(parent.pid as number)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('watchEmbedded', () => {
  it('rejects, naming the service and its log, once its process is gone; not while it runs, nor for external ones', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-watch-'));
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const pid = child.pid as number;
      fs.mkdirSync(path.join(stateDir, 'kafka'));
      fs.writeFileSync(path.join(stateDir, 'kafka', 'kafka.pid'), `${pid}\n`);
      const config = loadConfig({ HUNT_STATE_DIR: stateDir });
      const watch = watchEmbedded(
        config,
        [
          { name: 'kafka', state: 'up', mode: 'embedded', address: '127.0.0.1:19092', pid },
          { name: 'postgres', state: 'up', mode: 'external', address: 'db.example:5432' },
        ],
        50,
      );
      const outcome = watch.gone.then(() => 'resolved', (err: Error) => err.message);
      const early = await Promise.race([outcome, new Promise((resolve) => setTimeout(() => resolve('still watching'), 300))]);
      expect(early).toBe('still watching');
      child.kill('SIGKILL');
      expect(await outcome).toBe(`the embedded kafka (pid ${pid}) is no longer running; its log: ${path.join(stateDir, 'kafka', 'kafka.log')} (hunt stack up starts it again)`);
      watch.stop();
    } finally {
      child.kill('SIGKILL');
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
