import { DefaultLogger, Runtime } from '@temporalio/worker';

/** Keeps the worker's own INFO chatter out of test output (warnings still show). */
export function quietTemporalRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Already installed in this process: nothing to do.
  }
}
