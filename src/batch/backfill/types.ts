/** The backfill job's input and progress shapes, shared by workflow, activities and CLI. */
import type { KafkaRange, PartitionOffsets } from './kafka-source';
import type { FileCursor } from './ndjson-source';
import type { ImportCounts } from './counts';

export interface FileSource {
  kind: 'file';
  /** Path of an NDJSON file readable by the worker. */
  path: string;
}

export interface KafkaSource {
  kind: 'kafka';
  topic: string;
  /** ISO time: first record at or after it (default: the topic's start). */
  from?: string;
  /** ISO time: records before it (default: the end offsets when the job starts). */
  to?: string;
}

export type BackfillSource = FileSource | KafkaSource;

/** Where the import stands: a file position, or the next offset per partition. */
export interface BackfillCursor {
  file?: FileCursor;
  kafka?: PartitionOffsets;
}

/** What the source holds, fixed when the job starts. */
export interface SourceExtent {
  /** Bytes of the file, or records in the offset range. */
  total: number;
  range?: KafkaRange;
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
  range?: KafkaRange;
}

export interface ChunkBatchResult {
  cursor: BackfillCursor;
  counts: ImportCounts;
  done: boolean;
  /** Bytes read so far (file), or records read so far (Kafka). */
  position: number;
}
