/**
 * The worker's SDK runtime: the core's log lines are forwarded to the runtime's logger, which
 * scrubs secrets, instead of the core writing them to the console itself, unscrubbed (worker
 * logs held raw, coloured `WARN temporalio_sdk_core` lines beside the JSON ones).
 */
import { Runtime, type RuntimeOptions } from '@temporalio/worker';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerSecret } from '../../src/redact';
import { installRuntime } from '../../src/worker/service';

afterEach(() => vi.restoreAllMocks());

describe('installRuntime', () => {
  it("forwards the core's lines to a logger that scrubs them", () => {
    let options: RuntimeOptions | undefined;
    vi.spyOn(Runtime, 'install').mockImplementation((given) => {
      options = given;
      return undefined as unknown as Runtime;
    });
    installRuntime({ metricsPort: undefined, metricsBindAddress: '127.0.0.1' }, 'WARN');
    const logging = options?.telemetryOptions?.logging;
    expect(logging && 'forward' in logging).toBe(true);

    registerSecret('core-secret-4242');
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((line) => {
      written.push(String(line));
      return true;
    });
    options?.logger?.warn('connect failed with core-secret-4242', { detail: 'core-secret-4242' });
    expect(written.join('')).toContain('connect failed with');
    expect(written.join('')).not.toContain('core-secret-4242');
  });
});
