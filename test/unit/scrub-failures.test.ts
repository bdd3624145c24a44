/**
 * Activity failures reach the workflow's history (readable in the Web UI) scrubbed: the
 * worker's interceptor puts the message, the stack and every cause through scrubSecrets.
 * MockActivityEnvironment runs the SDK's real activity path with the interceptor.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { registerSecret } from '../../src/redact';
import { scrubActivityFailures } from '../../src/worker/scrub-failures';

describe('scrubActivityFailures', () => {
  it("hides secrets in a failing activity's message, stack and causes", async () => {
    registerSecret('hunter2-secret');
    const env = new MockActivityEnvironment(undefined, { interceptors: [scrubActivityFailures] });
    const failing = async () => {
      throw new Error('connect failed for postgres://hunt:hunter2-secret@db:5432/hunt', { cause: new Error('auth: password hunter2-secret refused') });
    };
    const failure = (await env.run(failing).catch((err: unknown) => err)) as Error & { cause: Error };
    expect(failure.message).toBe('connect failed for postgres://hunt:***@db:5432/hunt');
    expect(failure.stack).not.toContain('hunter2-secret');
    expect(failure.cause.message).toBe('auth: password *** refused');
  });

  it('passes results through untouched', async () => {
    const env = new MockActivityEnvironment(undefined, { interceptors: [scrubActivityFailures] });
    expect(await env.run(async () => 'hunter2-secret is a result, not a failure')).toBe('hunter2-secret is a result, not a failure');
  });
});
