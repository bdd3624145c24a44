/**
 * Backfill steps. `importChunks` imports chunk after chunk, each in its own transaction,
 * and heartbeats the cursor after each commit: a retry after a crash resumes from the last
 * heartbeat. A chunk committed after the last heartbeat is imported again on resume, which
 * changes nothing (eventIds dedupe, quarantine is unique per source position and bytes), and
 * its events count as inserted, as they were: heartbeats are throttled and die with their
 * worker, so the counts they carry can lag what committed; the stored events' source, which
 * names the job and the record, does not (store/batch/backfill-own-events.ts).
 */
import fs from 'node:fs';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { EVENT_COMMIT_LIMITS } from '../store/bounded-transaction';
import { addCounts, countImport, emptyCounts, ImportPipeline, prepareImport, type ImportCounts, type ImportOptions, type ImportOrigin } from './backfill/import-records';
import { consumeRange, importsRecord, remaining, resolveRange, type PartitionOffsets } from './backfill/kafka-source';
import { KafkaRangeGoneError } from './backfill/range-check';
import type { SourceRecord } from '../pipeline/classify';
import { checkImportFile, ImportFileError, openImportFile } from './backfill/import-file';
import { checkImportTopic, ImportTopicError } from './backfill/import-topic';
import { CHUNK_BYTE_BUDGET, fileSize, readChunk, type FileRecord } from './backfill/ndjson-source';
import type { KafkaMessage } from 'kafkajs';
import { sliceEnd } from '../pipeline/record-slices';
import { RecentEventIds } from './backfill/recent-event-ids';
import { toDetailText } from '../events/detail-text';
import { MAX_EVENT_BYTES } from '../events/validate';
import type { RejectedRecord } from '../store/hot-path/quarantine';
import type { BackfillSource, ChunkBatchInput, ChunkBatchResult, SourceExtent } from './backfill/types';
import type { ActivityDeps } from '../worker/activity-deps';

/** The checked real path of a job's file; a file it may not read fails the job at once. */
function importFile(importDir: string, file: string): string {
  return failingJobInput(() => checkImportFile(importDir, file));
}

/** The job's file, checked and opened for a call's chunks; a file it may not read fails the job at once. */
function openedImportFile(importDir: string, file: string): number {
  return failingJobInput(() => openImportFile(importDir, file));
}

/** A topic the job may not read fails the job at once, before anything is asked of Kafka. */
function importTopic(patterns: readonly string[], topic: string): string {
  failingJobInput(() => checkImportTopic(patterns, topic));
  return topic;
}

/** Runs a check of the job's source; what it refuses fails the job for good, with its message. */
function failingJobInput<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof ImportFileError || err instanceof ImportTopicError) throw ApplicationFailure.nonRetryable(`backfill: ${err.message}`, 'InvalidJobInput');
    throw err;
  }
}

export function createBackfillActivities(deps: Pick<ActivityDeps, 'pool' | 'kafka' | 'config' | 'logger'>) {
  return {
    /** What the source holds, fixed at the start: the file's size, or the topic's offset range. */
    async describeBackfillSource(source: BackfillSource): Promise<SourceExtent> {
      if (source.kind === 'file') return { total: fileSize(importFile(deps.config.backfill.importDir, source.path)) };
      // Before the topic list: the answer must not tell whether a topic it may not read exists.
      importTopic(deps.config.backfill.topics, source.topic);
      const admin = deps.kafka.admin();
      let exists: boolean;
      try {
        await admin.connect();
        exists = (await admin.listTopics()).includes(source.topic);
      } finally {
        // Every failed attempt (Kafka away at the start) left a connected admin behind.
        await admin.disconnect().catch(() => undefined);
      }
      if (!exists) throw ApplicationFailure.nonRetryable(`backfill: Kafka topic ${source.topic} does not exist`, 'InvalidJobInput');
      const range = await resolveRange(deps.kafka, source.topic, msOf(source.from));
      return { total: remaining(range.start, range.end), range };
    },

    async importChunks(input: ChunkBatchInput): Promise<ChunkBatchResult> {
      const context = Context.current();
      const resumed = context.info.heartbeatDetails as ChunkBatchResult | undefined;
      const start: ChunkBatchResult = resumed ?? { cursor: input.cursor, counts: emptyCounts(), done: false, position: 0 };
      const options = {
        dryRun: input.dryRun,
        huntId: input.huntId,
        groupId: `backfill:${input.jobId}`,
        lanes: deps.config.ingest.commitLanes,
        resumed: context.info.attempt > 1,
        bounds: { ...EVENT_COMMIT_LIMITS, signal: context.cancellationSignal },
      };
      const job = jobContext(context, start);
      return input.source.kind === 'file' ? importFileChunks(deps, input, start, options, job) : importKafkaChunks(deps, input, start, options, job);
    },
  };
}

/** What an import needs of its activity's context: its heartbeat (the cursor), its cancellation, and a keep-alive for commits. */
interface JobContext {
  heartbeat(state: ChunkBatchResult): void;
  readonly cancellationSignal: AbortSignal;
  /** `work` (a commit), with the last heartbeat sent again every few seconds meanwhile. */
  committing<T>(work: Promise<T>): Promise<T>;
}

/** How often the last heartbeat is sent again while a chunk commits: well within the step's 15 s heartbeat timeout. */
const KEEPALIVE_MS = 5000;

/**
 * The activity's context, whose last heartbeat is sent again every few seconds while a chunk
 * commits. Without it, a chunk whose commit outlasted the heartbeat timeout (a chunk with many
 * rows the database refuses, isolated one by one) had its attempt timed out; the retry,
 * resuming before that chunk, took as long again, attempt after attempt, and the chunks after
 * it never came, with no failure counted. Only while committing: reading stays silent when it
 * does not move (the Kafka source stops heartbeating a consumer that makes no progress, so a
 * stuck one shows as a heartbeat timeout). A worker that dies stops the timer too.
 */
function jobContext(context: Context, start: ChunkBatchResult): JobContext {
  let latest = start;
  return {
    heartbeat(state) {
      latest = state;
      context.heartbeat(state);
    },
    cancellationSignal: context.cancellationSignal,
    async committing(work) {
      const timer = setInterval(() => context.heartbeat(latest), KEEPALIVE_MS);
      try {
        return await work;
      } finally {
        clearInterval(timer);
      }
    },
  };
}

/**
 * Chunk after chunk from the file's byte cursor, through an ImportPipeline: while chunks
 * commit (each lane on its own, chunk after chunk), the next is read and classified. The
 * heartbeat's cursor moves only past chunks every lane has committed, in file order, so a
 * resumed attempt starts right after the last wholly committed chunk (what committed past
 * it is found stored again, without effect).
 */
async function importFileChunks(deps: Pick<ActivityDeps, 'pool' | 'config'>, input: ChunkBatchInput, start: ChunkBatchResult, options: ImportOptions, context: JobContext) {
  const path = (input.source as { path: string }).path;
  // Every chunk of the call reads this descriptor: the path is not opened again.
  // By its real path: the same file given as /data//x, /data/./x or through a symlink is one
  // source, so a job started again quarantines its rejects once (their key holds the source).
  // Looked up before the open, so a failing look-up leaves no descriptor behind.
  const realPath = failingJobInput(() => checkImportFile(deps.config.backfill.importDir, path));
  const fd = openedImportFile(deps.config.backfill.importDir, path);
  const origin: ImportOrigin = { topic: `file:${realPath}`, partition: 0, sourceLabel: `backfill:${input.jobId}` };
  let state = start;
  let readFrom = state.cursor.file ?? { byteOffset: 0, line: 1 };
  // The chunks go in with plain inserts, leaving out their repeats of the chunks before.
  const fileOptions = { ...options, earlierChunks: new RecentEventIds() };
  const pipeline = new ImportPipeline(deps.pool, fileOptions, { plainInserts: true });
  try {
    for (let chunk = 0; chunk < input.maxChunks && !start.done; chunk++) {
      if (context.cancellationSignal.aborted) break;
      const read = readChunk(fd, readFrom, input.chunkSize, MAX_EVENT_BYTES);
      const fits = (r: FileRecord) => r.bytes <= MAX_EVENT_BYTES && !r.unfinished;
      const records = read.records.filter(fits).map((r) => ({ offset: String(r.line), key: null, value: r.value, timestamp: '0' }));
      const prepared = await prepareImport(origin, records, fileOptions, read.records.filter((r) => !fits(r)).map((r) => tooLongLine(origin, r)));
      const committed = (counts: ImportCounts) => {
        state = { cursor: { file: read.next }, counts: addCounts(state.counts, counts), done: read.eof, position: read.next.byteOffset };
        context.heartbeat(state);
      };
      if (options.dryRun) committed(await context.committing(countImport(deps.pool, prepared)));
      else await context.committing(pipeline.push(prepared, committed));
      readFrom = read.next;
      if (read.eof) break;
    }
  } catch (err) {
    // A failing attempt ends only once none of its commits runs: its retry must not race them.
    await pipeline.settle();
    throw err;
  } finally {
    fs.closeSync(fd);
  }
  await context.committing(pipeline.drain());
  return state;
}

/**
 * The range's records, partition slice after partition slice, through an ImportPipeline as
 * the file's chunks go: while a slice commits, the next is fetched and classified. A
 * partition's cursor is heartbeated only past slices every lane has committed, in the order
 * they were read, and so is a pass over records deleted before they were read. The chunks go
 * in the ordinary way (no plain inserts): a range of the input topic is mostly events the hot
 * path stored already.
 */
async function importKafkaChunks(deps: Pick<ActivityDeps, 'pool' | 'kafka' | 'config' | 'logger'>, input: ChunkBatchInput, start: ChunkBatchResult, options: ImportOptions, context: JobContext) {
  // Checked again here: a job may resume after its workers' BACKFILL_TOPICS was narrowed.
  const topic = importTopic(deps.config.backfill.topics, (input.source as { topic: string }).topic);
  const range = input.range;
  if (!range) throw ApplicationFailure.nonRetryable('backfill: a Kafka import needs its offset range', 'InvalidJobInput');
  const { from, to } = input.source as { from?: string; to?: string };
  const [fromMs, toMs] = [msOf(from), msOf(to)];
  let state = start;
  let cursor = { ...(state.cursor.kafka ?? range.start) };
  /** Where the job stands with `cursor` where it is. */
  const progress = () => {
    const left = remaining(cursor, range.end);
    return { cursor: { kafka: { ...cursor } }, done: left === 0, position: remaining(range.start, range.end) - left };
  };
  /** A partition's records before `next` are done with (imported, or lost), counted in `counts`: heartbeated, so a retry resumes after them and counts them once. */
  const advance = (partition: number, next: bigint, counts: ImportCounts) => {
    cursor[String(partition)] = next.toString();
    state = { ...progress(), counts: addCounts(state.counts, counts) };
    context.heartbeat(state);
  };
  const pipeline = new ImportPipeline(deps.pool, options);
  /** Commits the records, then advances the partition's cursor to `next` (in a dry run, only counts). */
  const importSlice = async (partition: number, records: SourceRecord[], next: bigint, outsideRange: number) => {
    // A slice committing failed: this attempt ends here, whatever is left to read.
    pipeline.throwIfFailed();
    // Nothing in the time window: no transaction, only the cursor, in its turn.
    if (records.length === 0) return pipeline.after(() => advance(partition, next, { ...emptyCounts(), outsideRange }));
    const origin: ImportOrigin = { topic, partition, sourceLabel: `backfill:${input.jobId}:${topic}:${partition}` };
    const prepared = await prepareImport(origin, records, options);
    const done = (counts: ImportCounts) => advance(partition, next, { ...counts, outsideRange });
    if (!options.dryRun) return context.committing(pipeline.push(prepared, done));
    // A dry run commits nothing, but its counts still take their turn behind the passes queued before.
    const counts = await context.committing(countImport(deps.pool, prepared));
    pipeline.after(() => done(counts));
  };
  let readTo: PartitionOffsets;
  try {
    // What consumeRange returns may lie past the last slice: markers, aborted or deleted records at the range's end.
    readTo = await failingIfGone(() =>
      consumeRange(deps.kafka, topic, cursor, range, input.chunkSize * input.maxChunks, async ({ partition, messages }) => {
        for (const slice of kafkaChunks(messages, input.chunkSize)) {
          const inWindow = slice.filter((m) => importsRecord(m, fromMs, toMs));
          await importSlice(partition, inWindow, BigInt(slice[slice.length - 1]!.offset) + 1n, slice.length - inWindow.length);
        }
      },
      context.cancellationSignal,
      () => context.heartbeat(state), // waiting on Kafka is not a dead worker
      ({ partition, from, to }) => {
        // Lost to the job, and nothing else would say so: counted in its result and progress.
        const deleted = Number(to - from);
        pipeline.after(() => advance(partition, to, { ...emptyCounts(), deletedBeforeRead: deleted }));
        deps.logger.error(
          { job: input.jobId, topic, partition, fromOffset: from.toString(), toOffset: to.toString(), records: deleted },
          `backfill: ${deleted} records of ${topic}/${partition} (offsets ${from} to ${to - 1n}) were deleted (retention or delete-records) before the job read them; passed, and counted as deletedBeforeRead`,
        );
      }),
    );
  } catch (err) {
    // A failing attempt ends only once none of its commits runs: its retry must not race them.
    await pipeline.settle();
    throw err;
  }
  await context.committing(pipeline.drain());
  // Every slice read is in: the cursor goes to where the reading ended.
  cursor = readTo;
  return { ...state, ...progress() };
}

/** A topic deleted or recreated under the job fails it for good: no retry brings its records back. */
async function failingIfGone(read: () => Promise<PartitionOffsets>): Promise<PartitionOffsets> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof KafkaRangeGoneError) throw ApplicationFailure.nonRetryable(`backfill: ${err.message}`, 'KafkaRangeGone');
    throw err;
  }
}

/** A line too long to hold: too_large, with its real size; quarantine keeps its first bytes. */
function tooLongLine(origin: ImportOrigin, record: FileRecord): RejectedRecord {
  return {
    topic: origin.topic,
    partition: origin.partition,
    offset: String(record.line),
    key: null,
    value: record.value,
    reason: 'too_large',
    detail: toDetailText(
      `line ${record.line} is ${record.unfinished ? 'over ' : ''}${record.bytes} bytes; the limit is ${MAX_EVENT_BYTES} (quarantine keeps its first ${record.value.length} bytes)`,
    ),
  };
}

function msOf(iso: string | undefined): number | undefined {
  return iso === undefined ? undefined : Date.parse(iso);
}

/**
 * A fetch's records in chunks of `chunkSize` records, each also ending at the file source's
 * byte budget: by count alone, 50,000 large records (a gzip batch unpacks to 64 MiB) made
 * chunks of 100+ MiB, three held at once.
 */
export function* kafkaChunks<M extends KafkaMessage>(messages: readonly M[], chunkSize: number): Generator<M[]> {
  for (let i = 0; i < messages.length; ) {
    const { end } = sliceEnd(messages, i, chunkSize, CHUNK_BYTE_BUDGET);
    yield messages.slice(i, end);
    i = end;
  }
}
