/**
 * `backfill`: imports historical events from an NDJSON file through the hot path's
 * validation, dedupe and scoring. Chunked, resumable (the cursor is heartbeated and carried
 * across continue-as-new), pausable by signal, observable by query, cancellable at a chunk
 * boundary. Idempotent: running it twice, or on events the hot path already ingested,
 * stores and scores each eventId once.
 */
import {
  CancellationScope,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../src/worker/activities';
import { addCounts, emptyCounts, type ImportCounts } from '../src/batch/backfill/counts';
import type { KafkaRange } from '../src/batch/backfill/kafka-source';
import type { BackfillCursor, BackfillSource } from '../src/batch/backfill/types';
import { HUNT_ID, HUNT_JOB_KIND } from '../src/temporal/search-attributes';
import { BACKFILL_CHUNK_SIZE, BACKFILL_MAX_CHUNK_SIZE, ID_PATTERN, KAFKA_EPOCH, TOPIC_NAME_PATTERN } from '../src/constants';
import { asObject, badInput, shown, ISO_TIME_STRICT, ISO_TIME_UTC_YEARS, optionalInt, optionalIsoTime, rejectUnknownFields } from './input';

// Retried as the import is: a Kafka or disk away when the job starts is waited out, not a
// failed job with a driver's message (what the source cannot be fails for good, InvalidJobInput).
const { describeBackfillSource } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});
const { importChunks } = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  // A killed worker is noticed within this, and the retry resumes from the last heartbeat.
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

/**
 * Web UI input, e.g. `{ "source": { "kind": "file", "path": "/data/hunt-2025.ndjson" } }` or
 * `{ "source": { "kind": "kafka", "topic": "hunt.events", "from": "2026-11-21T00:00:00Z", "to": "2026-11-22T00:00:00Z" } }`.
 */
export interface BackfillInput {
  source: BackfillSource;
  /** Report what would change without writing anything. */
  dryRun?: boolean;
  /** Import only this hunt's events. */
  huntId?: string;
  /** Records per chunk (default BACKFILL_CHUNK_SIZE). */
  chunkSize?: number;
}

export interface BackfillProgress {
  state: 'running' | 'paused' | 'completed' | 'cancelled';
  dryRun: boolean;
  /** File: bytes read and the file's size. Kafka: records read and records in the range. */
  done: number;
  total: number;
  percent: number;
  /** Records per second since this job started. */
  rate: number;
  cursor: BackfillCursor;
  counts: ImportCounts;
}

/** Carried across continue-as-new; not for operators to set. */
interface Carried {
  cursor: BackfillCursor;
  counts: ImportCounts;
  total: number;
  /** Records (Kafka) or bytes (file) read so far. */
  position: number;
  range?: KafkaRange;
  startedAtMs: number;
}

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const progressQuery = defineQuery<BackfillProgress>('progress');

const CHUNKS_PER_ACTIVITY = 10;
/** Activity calls per run before continue-as-new keeps the history small. */
const CALLS_PER_RUN = 200;
/**
 * Or fewer: each call's input and result repeat the cursor and the range, maps of every
 * partition, so a topic of thousands of partitions made 200 calls tens of MB of history
 * (the server ends a run at 50 MB; a client reads at most 4 MB of it in one answer). Both
 * figures come from the history itself, so a replay decides as the run did.
 */
const HISTORY_BYTES_PER_RUN = 2 * 1024 * 1024;
const historyIsBig = () => workflowInfo().historySize >= HISTORY_BYTES_PER_RUN || workflowInfo().continueAsNewSuggested;
const HISTORY_SIZE_PATCH = 'backfill-history-size';

export async function backfill(input: BackfillInput, carried?: Carried): Promise<BackfillProgress> {
  const job = checkInput(input, carried === undefined);
  upsertSearchAttributes([
    { key: HUNT_JOB_KIND, value: 'backfill' },
    ...(job.huntId ? [{ key: HUNT_ID, value: job.huntId }] : []),
  ]);
  upsertMemo({ source: describeSource(job.source), dryRun: job.dryRun, huntId: job.huntId ?? '(all)' });

  const state: Carried = carried ?? (await startState(job.source));
  let paused = false;
  let phase: BackfillProgress['state'] = 'running';
  setHandler(pauseSignal, () => void (paused = true));
  setHandler(resumeSignal, () => void (paused = false));
  const progress = (): BackfillProgress => {
    const elapsedS = Math.max(0.001, (Date.now() - state.startedAtMs) / 1000);
    const done = state.position;
    return {
      state: paused && phase === 'running' ? 'paused' : phase,
      dryRun: job.dryRun,
      done,
      total: state.total,
      percent: state.total === 0 ? 100 : Math.round((done / state.total) * 1000) / 10,
      // Records read: those skipped for their timestamp were read too.
      rate: Math.round((state.counts.records + (state.counts.outsideRange ?? 0)) / elapsedS),
      cursor: state.cursor,
      counts: state.counts,
    };
  };
  setHandler(progressQuery, progress);

  try {
    for (let call = 0; ; call++) {
      await condition(() => !paused);
      // Behind a patch: a run begun on older code, its history past the size already,
      // scheduled a call there, and must replay as it ran. Never before the run's first call,
      // so a run always makes progress, whatever its carried state weighs.
      if (call >= CALLS_PER_RUN || (call > 0 && patched(HISTORY_SIZE_PATCH) && historyIsBig())) await continueAsNew<typeof backfill>(input, state);
      const result = await importChunks({
        jobId: workflowInfo().workflowId,
        source: job.source,
        cursor: state.cursor,
        chunkSize: job.chunkSize,
        maxChunks: CHUNKS_PER_ACTIVITY,
        dryRun: job.dryRun,
        huntId: job.huntId,
        range: state.range,
      });
      state.cursor = result.cursor;
      state.position = result.position;
      state.counts = addCounts(state.counts, result.counts);
      if (result.done) break;
    }
    phase = 'completed';
    return progress();
  } catch (err) {
    if (isCancellation(err)) {
      phase = 'cancelled';
      // Committed chunks stay (they are valid events); report where the import stopped.
      await CancellationScope.nonCancellable(async () => upsertMemo({ stoppedAt: JSON.stringify(state.cursor) }));
    }
    throw err;
  }
}

/** `newJob`: not a continued run (continue-as-new), whose input was checked when its job started. */
function checkInput(input: BackfillInput, newJob: boolean): Required<Omit<BackfillInput, 'huntId'>> & { huntId?: string } {
  const fields = asObject('backfill', input);
  rejectUnknownFields('backfill', fields, ['source', 'dryRun', 'huntId', 'chunkSize']);
  const source = fields.source as Record<string, unknown> | undefined;
  if (!source || typeof source !== 'object') {
    throw badInput('backfill', 'source is required, e.g. {"source": {"kind": "file", "path": "/data/events.ndjson"}}');
  }
  const checkedSource = checkSource(source, newJob);
  if (fields.dryRun !== undefined && typeof fields.dryRun !== 'boolean') throw badInput('backfill', 'dryRun must be true or false');
  if (fields.huntId !== undefined && (typeof fields.huntId !== 'string' || !ID_PATTERN.test(fields.huntId))) {
    throw badInput('backfill', 'huntId must be 1-64 characters of [A-Za-z0-9_.-]');
  }
  return {
    source: checkedSource,
    dryRun: fields.dryRun === true,
    huntId: fields.huntId as string | undefined,
    chunkSize: optionalInt('backfill', fields, 'chunkSize', 1, BACKFILL_MAX_CHUNK_SIZE, BACKFILL_CHUNK_SIZE),
  };
}

async function startState(source: BackfillSource): Promise<Carried> {
  const extent = await describeBackfillSource(source);
  return {
    cursor: source.kind === 'file' ? { file: { byteOffset: 0, line: 1 } } : { kafka: extent.range?.start ?? {} },
    counts: emptyCounts(),
    total: extent.total,
    position: 0,
    range: extent.range,
    startedAtMs: Date.now(),
  };
}

function describeSource(source: BackfillSource): string {
  return source.kind === 'file' ? `file:${source.path}` : `kafka:${source.topic} [${source.from ?? 'start'}, ${source.to ?? 'now'})`;
}

function checkSource(source: Record<string, unknown>, newJob: boolean): BackfillSource {
  // A misspelt field would be ignored, and import the whole topic or file ("From", "huntId"
  // inside source). For new jobs only: a job started before this check, continued as new
  // after it, goes on as it began rather than fail partway. patched(): a run started
  // before it replays as it was made.
  // patched() first, always: a run that recorded the marker must meet the call on replay.
  const strict = patched('backfill-source-fields') && newJob;
  // Checks added later, each behind a marker of its own: a job started before one, whose
  // input it would refuse, replays (and continues) as it began instead of failing every
  // workflow task with a determinism error once a new worker replays it.
  const epochChecked = patched('backfill-kafka-epoch') && newJob;
  const futureChecked = patched('backfill-from-not-future') && newJob;
  const checks = { utcYears: patched(ISO_TIME_UTC_YEARS) && newJob, strict: patched(ISO_TIME_STRICT) && newJob };
  if (strict && (source.kind === 'file' || source.kind === 'kafka')) {
    rejectUnknownFields('backfill', source, source.kind === 'file' ? ['kind', 'path'] : ['kind', 'topic', 'from', 'to'], 'source');
  }
  if (source.kind === 'file') {
    if (typeof source.path !== 'string' || !source.path.startsWith('/')) {
      throw badInput('backfill', `source.path must be an absolute path on the worker's machine, got ${shown(source.path)}`);
    }
    return { kind: 'file', path: source.path };
  }
  if (source.kind === 'kafka') {
    if (typeof source.topic !== 'string' || !TOPIC_NAME_PATTERN.test(source.topic)) {
      throw badInput('backfill', `source.topic must be a Kafka topic name, got ${shown(source.topic)}`);
    }
    const from = optionalIsoTime('backfill', source, 'from', checks);
    const to = optionalIsoTime('backfill', source, 'to', checks);
    // Kafka's timestamps count from 1970: asked for an earlier one, it answers an unsupported
    // API version, or (-1 ms) the log's end, and the job would import nothing without a word.
    for (const [field, time] of [['from', from], ['to', to]] as const) {
      if (epochChecked && time !== undefined && time < KAFKA_EPOCH) {
        throw badInput('backfill', `source.${field} must be at or after ${KAFKA_EPOCH} (Kafka's timestamps start there), got ${time}`);
      }
    }
    // By instant: a time passed on as written (checks.strict false) need not be in UTC.
    if (from !== undefined && to !== undefined && Date.parse(from) >= Date.parse(to)) {
      throw badInput('backfill', `source.from (${from}) must be before source.to (${to})`);
    }
    // Kafka answers a time past its last record with the log's end: the job imported nothing
    // and ended green. The workflow's clock is replay-safe.
    if (futureChecked && from !== undefined && from > new Date().toISOString()) {
      throw badInput('backfill', `source.from (${from}) is later than now: there is nothing to import from it yet`);
    }
    return { kind: 'kafka', topic: source.topic, from, to };
  }
  throw badInput('backfill', `source.kind must be "file" or "kafka", got ${shown(source.kind)}`);
}
