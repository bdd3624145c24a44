/**
 * Builds the workflow bundle the way the worker does. The type checker misses a Node built-in
 * that reaches workflow code through another import; the bundler does not.
 */
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { projectRoot } from '../src/config';

const { code } = await bundleWorkflowCode({
  workflowsPath: path.join(projectRoot, 'workflows/index.ts'),
  logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
});
console.log(`workflow bundle OK (${Math.round(code.length / 1024)} KiB)`);
