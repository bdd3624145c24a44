/**
 * How the long-running commands stop (src/cli/stop.ts), on a child process whose graceful
 * stop never finishes: a second signal of either kind exits at once, and the deadline ends
 * a stop that hangs.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait';

const fixture = path.join(__dirname, '..', 'fixtures', 'stopping-command.ts');

function startCommand(env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const printed = (text: string) => waitFor(`the command to print "${text}"`, async () => output.includes(text), { timeoutMs: 20_000, intervalMs: 50 });
  return { child, exited, printed, output: () => output };
}

describe('stopping a long-running command', () => {
  it.each([
    ['SIGTERM', 'SIGINT', 130],
    ['SIGINT', 'SIGTERM', 143],
    ['SIGTERM', 'SIGTERM', 143],
  ] as const)('exits at once on %s then %s, with %i', async (first, second, code) => {
    const command = startCommand();
    await command.printed('waiting for a signal');
    command.child.kill(first);
    await command.printed(`${first}: finishing the batch in flight`);
    command.child.kill(second);
    expect(await command.exited).toBe(code);
  });

  it('exits with 1 once a graceful stop outlives its deadline, saying why', async () => {
    const command = startCommand({ STOP_DEADLINE_MS: '500' });
    await command.printed('waiting for a signal');
    command.child.kill('SIGTERM');
    expect(await command.exited).toBe(1);
    expect(command.output()).toMatch(/the graceful stop did not finish in time .*the next run reads again/);
  });

  it('says what its caller says is left undone (the worker has no records to commit)', async () => {
    const command = startCommand({ STOP_DEADLINE_MS: '500', STOP_LATE: "the worker's close did not finish in time" });
    await command.printed('waiting for a signal');
    command.child.kill('SIGTERM');
    expect(await command.exited).toBe(1);
    expect(command.output()).toMatch(/the worker's close did not finish in time/);
    expect(command.output()).not.toMatch(/records uncommitted/);
  });
});
