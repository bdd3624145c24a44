/**
 * One `stack up` or `stack down` at a time per state folder (infra/stack-lock.ts): two at once
 * each started a broker, and the pid file named the one that died.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pidFileText, startTimeOf } from '../../infra/process';
import { withStackLock } from '../../infra/stack-lock';
import { waitFor } from '../helpers/wait';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});
const stateDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-stack-lock-'));
  dirs.push(dir);
  return dir;
};
const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('withStackLock', () => {
  it('runs the calls of one process one after the other, each to its end', async () => {
    const dir = stateDir();
    const steps: string[] = [];
    const step = (name: string) => async () => {
      steps.push(`${name} in`);
      await tick();
      steps.push(`${name} out`);
      return name;
    };
    const failing = withStackLock(dir, async () => {
      steps.push('failing in');
      await tick();
      throw new Error('kafka did not come up');
    });
    expect(await Promise.all([withStackLock(dir, step('up')), failing.catch((err: Error) => err.message), withStackLock(dir, step('down'))])).toEqual(['up', 'kafka did not come up', 'down']);
    expect(steps).toEqual(['failing in', 'up in', 'up out', 'down in', 'down out']);
    expect(fs.existsSync(path.join(dir, 'stack.lock'))).toBe(false);
  });

  it('waits while another live process holds it, and takes over one whose holder is gone', async () => {
    const dir = stateDir();
    const lockFile = path.join(dir, 'stack.lock');
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = holder.pid as number;
    await waitFor('the holder to run', () => startTimeOf(pid) !== undefined);
    fs.writeFileSync(lockFile, pidFileText(pid));
    const waitedFor: number[] = [];
    let ran = false;
    const call = withStackLock(dir, async () => void (ran = true), (p) => waitedFor.push(p));
    await waitFor('the call to say what it waits for', () => waitedFor.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(ran).toBe(false);
    expect(waitedFor).toEqual([pid]);
    holder.kill('SIGKILL');
    await call;
    expect(ran).toBe(true);
    expect(fs.existsSync(lockFile)).toBe(false);
  });
});
