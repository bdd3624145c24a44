/**
 * The embedded stack's pid files: a pid alone cannot tell the service from an unrelated
 * process given the same pid after a reboot (the state folder survives it), which `stack up`
 * would take for the service and `stack down` would signal. The file records when the
 * process started too, and a pid whose process started at another time is not ours.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pidFileText, runningPid, startTimeOf } from '../../infra/process';
import { waitFor } from '../helpers/wait';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-pid-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const pidFile = path.join(dir, 'service.pid');
const onLinux = fs.existsSync(`/proc/${process.pid}/stat`);

describe('runningPid', () => {
  it.skipIf(!onLinux || process.getuid?.() !== 0)("trusts another user's pid file only for a process of that user (root reading a user's lock or service)", async () => {
    const other = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const theirs = spawn('sleep', ['30'], { stdio: 'ignore', uid: other, gid: other });
    try {
      const pid = theirs.pid as number;
      await waitFor('their process to run', () => startTimeOf(pid) !== undefined);
      fs.writeFileSync(pidFile, pidFileText(pid));
      fs.chownSync(pidFile, other, other);
      expect(runningPid(pidFile)).toBe(pid);
      // Naming a process of root's, the same user's file is not trusted.
      fs.writeFileSync(pidFile, pidFileText(process.pid));
      expect(runningPid(pidFile)).toBeUndefined();
      fs.chownSync(pidFile, 0, 0);
      expect(runningPid(pidFile)).toBe(process.pid);
    } finally {
      theirs.kill('SIGKILL');
    }
  });

  it.skipIf(!onLinux)('takes a live pid that started when the file says', () => {
    fs.writeFileSync(pidFile, `${process.pid} ${startTimeOf(process.pid)}\n`);
    expect(runningPid(pidFile)).toBe(process.pid);
  });

  it.skipIf(!onLinux)('refuses a live pid whose process started at another time (the pid was reused)', () => {
    const startedAt = Number(startTimeOf(process.pid));
    fs.writeFileSync(pidFile, `${process.pid} ${startedAt + 12345}\n`);
    expect(runningPid(pidFile)).toBeUndefined();
  });

  it('takes a pid file of an older version (the pid alone) at its word, and refuses a dead pid', () => {
    fs.writeFileSync(pidFile, `${process.pid}\n`);
    expect(runningPid(pidFile)).toBe(process.pid);
    fs.writeFileSync(pidFile, '2147483646\n');
    expect(runningPid(pidFile)).toBeUndefined();
    fs.writeFileSync(pidFile, 'garbage\n');
    expect(runningPid(pidFile)).toBeUndefined();
  });
});
