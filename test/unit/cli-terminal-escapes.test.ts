/**
 * What the job and quarantine listings print of text someone else chose (a workflow id typed
 * in the Web UI, a backfill file's name) reaches the operator's terminal escaped: an escape
 * sequence in it would redraw the screen or retitle the window.
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { quarantinedLine } from '../../src/cli/correctness';
import { listJobs } from '../../src/cli/job-list';

const HOSTILE = 'x\x1b[2J\x1b]0;owned\x07\r';
const ESCAPED = 'x\\u001b[2J\\u001b]0;owned\\u0007\\u000d';

/** A client listing `executions`; a running one's progress query is answered "no such query". */
function clientListing(executions: Partial<WorkflowExecutionInfo>[]): Client {
  const handle = {
    query: async () => Promise.reject(new Error('Workflow did not register a handler for progress')),
    describe: async () => ({ raw: { pendingActivities: [] } }),
    client: { withDeadline: (_: number, fn: () => Promise<unknown>) => fn() },
  };
  return {
    workflow: {
      list: async function* () {
        yield* executions;
      },
      getHandle: () => handle,
    },
  } as unknown as Client;
}

describe('hunt jobs', () => {
  it("escapes a job's type and workflow id, in its line and its progress line", async () => {
    const startTime = new Date('2026-12-01T10:00:00Z');
    const client = clientListing([
      { type: `rollupFlush${HOSTILE}`, workflowId: `id-${HOSTILE}`, runId: 'r1', status: { name: 'RUNNING' } as WorkflowExecutionInfo['status'], startTime },
      { type: 'dataQuality', workflowId: `done-${HOSTILE}`, runId: 'r2', status: { name: 'COMPLETED' } as WorkflowExecutionInfo['status'], startTime, closeTime: new Date('2026-12-01T10:01:05Z') },
    ]);
    const lines = await listJobs(client, 'hunt', { limit: 10, pool: () => ({}) as pg.Pool });
    expect(lines).toHaveLength(3);
    for (const line of lines) for (const raw of ['\x1b', '\x07', '\r']) expect(line).not.toContain(raw);
    expect(lines[0]).toContain(`rollupFlush${ESCAPED}`);
    expect(lines[0]).toContain(`id-${ESCAPED}`);
    expect(lines[1]).toMatch(new RegExp(`^    rollupFlush${ESCAPED.replace(/[\\[\]]/g, '\\$&')} running`));
    expect(lines[2]).toContain(`done-${ESCAPED}  took 1:05`);
  });
});

describe('hunt dlq list', () => {
  it("escapes a record's source (a backfill file's name) and the DLQ's refusal", () => {
    const record = {
      id: 7,
      reason: 'schema_violation',
      detail: 'eventId: Required',
      source_topic: `file:imports/${HOSTILE}.ndjson`,
      source_partition: 0,
      source_offset: 12,
      quarantined_at: new Date(),
      dlq_pending: true,
      dlq_refused: `too large${HOSTILE}`,
    };
    expect(quarantinedLine(record)).toBe(`#7 schema_violation file:imports/${ESCAPED}.ndjson/0@12 [DLQ copy refused, tried again in 10 min to 6 h: too large${ESCAPED}]: eventId: Required`);
  });
});
