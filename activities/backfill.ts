/**
 * Backfill steps. `importChunks` imports chunk after chunk, each in its own transaction,
 * and heartbeats the cursor after each commit: a retry after a crash resumes from the last
 * heartbeat. A chunk committed after the last heartbeat is imported again on resume, which
 * changes nothing (eventIds dedupe, quarantine is unique per source position).
 */
import fs from 'node:fs';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { addCounts, emptyCounts, importRecords } from '../src/backfill/import-records';
import { fileSize, readChunk } from '../src/backfill/ndjson-source';
import type { BackfillSource, ChunkBatchInput, ChunkBatchResult } from '../src/backfill/types';
import type { ActivityDeps } from './deps';

export function createBackfillActivities(deps: Pick<ActivityDeps, 'pool'>) {
  return {
    /** The source's size (bytes of the file), checked before any import starts. */
    async describeBackfillSource(source: BackfillSource): Promise<{ total: number }> {
      if (!fs.existsSync(source.path)) {
        throw ApplicationFailure.nonRetryable(`backfill: file ${source.path} does not exist on the worker's machine`, 'InvalidJobInput');
      }
      return { total: fileSize(source.path) };
    },

    async importChunks(input: ChunkBatchInput): Promise<ChunkBatchResult> {
      const context = Context.current();
      const resumed = context.info.heartbeatDetails as ChunkBatchResult | undefined;
      let state: ChunkBatchResult = resumed ?? { cursor: input.cursor, counts: emptyCounts(), done: false, position: input.cursor.file.byteOffset };
      const origin = { topic: `file:${input.source.path}`, partition: 0, sourceLabel: `backfill:${input.jobId}` };
      for (let chunk = 0; chunk < input.maxChunks && !state.done; chunk++) {
        if (context.cancellationSignal.aborted) break;
        const read = readChunk(input.source.path, state.cursor.file, input.chunkSize);
        const records = read.records.map((r) => ({ offset: String(r.line), key: null, value: r.value, timestamp: '0' }));
        const counts = await importRecords(deps.pool, origin, records, {
          dryRun: input.dryRun,
          huntId: input.huntId,
          groupId: `backfill:${input.jobId}`,
        });
        state = { cursor: { file: read.next }, counts: addCounts(state.counts, counts), done: read.eof, position: read.next.byteOffset };
        context.heartbeat(state);
      }
      return state;
    },
  };
}
