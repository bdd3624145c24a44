/**
 * One `stack up` or `stack down` at a time per state folder. Each service checks its pid file,
 * then starts its process and writes the file: two at once (`hunt start` while `npm test`
 * brings the stack up) both started a broker, the second failed on the first's log folder
 * lock, and its pid file, written last, named the dead one; `stack down` then left the real
 * broker running and `stack up` refused its port. The lock is a file holding its owner's pid
 * and start time: one whose owner is gone (killed mid-start) is taken over.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pidFileText, runningPid } from './process';

const POLL_MS = 250;
/** Calls of this process, per lock file, one after the other: the file says only which process holds it. */
const inProcess = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` holding the state folder's stack lock, waiting while another process holds it
 * (for as long as that process lives: a first run builds the Temporal CLI for minutes).
 */
export function withStackLock<T>(stateDir: string, fn: () => Promise<T>, onWait: (holderPid: number) => void = () => undefined): Promise<T> {
  const lockFile = path.join(path.resolve(stateDir), 'stack.lock');
  const before = inProcess.get(lockFile) ?? Promise.resolve();
  const run = before.catch(() => undefined).then(() => holding(lockFile, fn, onWait));
  const settled = run.catch(() => undefined);
  inProcess.set(lockFile, settled);
  void settled.then(() => inProcess.get(lockFile) === settled && inProcess.delete(lockFile));
  return run;
}

async function holding<T>(lockFile: string, fn: () => Promise<T>, onWait: (holderPid: number) => void): Promise<T> {
  fs.mkdirSync(path.dirname(lockFile), { recursive: true });
  let told = false;
  while (!take(lockFile)) {
    const stale = readOrEmpty(lockFile);
    const holder = runningPid(lockFile);
    // This process's own is stale too: its calls wait for each other above.
    if (holder === undefined || holder === process.pid) {
      // Its owner is gone (killed mid-start): taken over, unless another process did first.
      if (readOrEmpty(lockFile) === stale) fs.rmSync(lockFile, { force: true });
      continue;
    }
    if (!told) onWait(holder);
    told = true;
    await sleep(POLL_MS);
  }
  const mine = readOrEmpty(lockFile);
  try {
    return await fn();
  } finally {
    // Only while it is still ours: one taken over meanwhile (this process taken for gone) is
    // its new owner's to remove.
    if (readOrEmpty(lockFile) === mine) fs.rmSync(lockFile, { force: true });
  }
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Creates the lock file with its content in one step (a link to a file written first): a
 * lock created empty and written after could be read empty in between, taken for one whose
 * owner is gone, and taken over while its owner went on.
 */
function take(lockFile: string): boolean {
  const draft = `${lockFile}.${process.pid}`;
  fs.writeFileSync(draft, pidFileText(process.pid));
  try {
    fs.linkSync(draft, lockFile);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(draft, { force: true });
  }
}
