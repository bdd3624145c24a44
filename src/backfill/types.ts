/** The backfill job's input and progress shapes, shared by workflow, activities and CLI. */
import type { FileCursor } from './ndjson-source';
import type { ImportCounts } from './counts';

export interface FileSource {
  kind: 'file';
  /** Path of an NDJSON file readable by the worker. */
  path: string;
}

export type BackfillSource = FileSource;

export interface BackfillCursor {
  file: FileCursor;
}

export interface ChunkBatchInput {
  jobId: string;
  source: BackfillSource;
  cursor: BackfillCursor;
  chunkSize: number;
  /** Chunks to import in this activity call before returning to the workflow. */
  maxChunks: number;
  dryRun: boolean;
  huntId?: string;
}

export interface ChunkBatchResult {
  cursor: BackfillCursor;
  counts: ImportCounts;
  done: boolean;
  /** Bytes read so far (file sources). */
  position: number;
}
