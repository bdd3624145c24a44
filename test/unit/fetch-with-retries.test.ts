/**
 * The set-up's fetches from registries (Kafka's jars through Maven, the Temporal CLI through
 * Go): when one fails for good, the error must carry the tool's own words, wherever the tool
 * writes them (Maven writes its [ERROR] lines to stdout), or a cold CI run that fails says
 * only "Command failed".
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fetchWithRetries } from '../../infra/process';

describe('fetchWithRetries', () => {
  it("fails with what the tool wrote to stdout when its stderr is empty (Maven's errors)", async () => {
    await expect(
      // The words put together by the shell: the error's own message names the command.
      fetchWithRetries('fetching jars', 'sh', ['-c', 'echo "[INFO] resolving"; echo "[ERROR] Could not transfer artifact: Connection" "re""set"; exit 1'], { attempts: 1, timeoutMs: 10_000 }),
    ).rejects.toThrow(/fetching jars failed 1 times; the last: .*\[ERROR\] Could not transfer artifact: Connection reset/s);
  });

  it('fails with stderr when the tool writes there (Go)', async () => {
    await expect(
      fetchWithRetries('building the CLI', 'sh', ['-c', 'echo progress; echo "go: 502 Bad Gateway" >&2; exit 1'], { attempts: 1, timeoutMs: 10_000 }),
    ).rejects.toThrow(/the last: go: 502 Bad Gateway$/);
  });

  it('tries again after a failure, and succeeds when a later try does', async () => {
    let tries = 0;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fetch-retry-'));
    try {
      // Fails the first time (and leaves a mark), succeeds the second.
      await fetchWithRetries('a flaky fetch', 'sh', ['-c', 'test -f "$0" || { touch "$0"; exit 1; }', path.join(dir, 'tried')], {
        attempts: 2,
        timeoutMs: 10_000,
        pauseMs: 1,
        beforeEachAttempt: () => void tries++,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(tries).toBe(2);
  });
});
