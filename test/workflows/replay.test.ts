/**
 * Replays the saved histories (recorded by record-histories.ts) against the current workflow
 * code. A change that issues different commands for the same history, such as a new, removed
 * or reordered activity call, would break every run in flight when it is deployed; here it
 * fails with a determinism error instead. Such a change needs `patched()` or a new workflow
 * type, not a re-recording.
 */
import fs from 'node:fs';
import path from 'node:path';
// Needs one protobufjs 8 shared by the @temporalio packages (the root devDependency keeps it
// hoisted); with several copies this fails with "type must be a Type".
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, Worker, type WorkflowBundle } from '@temporalio/worker';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config';
import { quietTemporalRuntime } from '../helpers/temporal';

const HISTORY_DIR = path.join(projectRoot, 'test/workflows/histories');
const WORKFLOWS_PATH = path.join(projectRoot, 'workflows/index.ts');
const files = fs.existsSync(HISTORY_DIR) ? fs.readdirSync(HISTORY_DIR).filter((f) => f.endsWith('.json')).sort() : [];

/** `backfill-1.json` holds a history of workflow type `backfill`. */
function typeOfFile(file: string): string {
  return file.replace(/-\d+\.json$/, '');
}

let bundle: WorkflowBundle;

beforeAll(async () => {
  quietTemporalRuntime();
  // One bundle for every replay: bundling is most of the cost of a replay worker.
  const silent = () => undefined;
  bundle = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    logger: { trace: silent, debug: silent, info: silent, warn: console.warn, error: console.error, log: silent },
  });
});

describe('saved workflow histories', () => {
  it('cover every workflow type the worker registers', async () => {
    const workflows: Record<string, unknown> = await import('../../workflows/index');
    const exported = Object.keys(workflows).filter((name) => typeof workflows[name] === 'function');
    const recorded = new Set(files.map(typeOfFile));
    expect(files.length).toBeGreaterThan(0);
    // A workflow added without a history: run `npm run histories:record -- <type>` and commit it.
    expect(exported.filter((type) => !recorded.has(type))).toEqual([]);
  });

  it.each(files)('%s replays on the current workflow code without a determinism error', async (file) => {
    const history = historyFromJSON(JSON.parse(fs.readFileSync(path.join(HISTORY_DIR, file), 'utf8')));
    // The file name says the type; the history must agree, or the guard above means nothing.
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    expect(started?.workflowType?.name).toBe(typeOfFile(file));
    await Worker.runReplayHistory({ workflowBundle: bundle }, history, path.basename(file, '.json'));
  });
});
