/**
 * The main job behind `hunt start`: brings up the embedded stack, migrates, runs the hot path
 * with its read API, the batch-plane worker with its Schedules applied, and a demo producer,
 * and prints where to look. Runs until Ctrl-C (or --duration seconds).
 */
import { formatStatuses, stackUp, watchEmbedded } from '../../infra/stack';
import { loadConfig, type Config } from '../config';
import { produceTraffic } from '../demo/produce';
import { TrafficGenerator } from '../demo/traffic';
import { createKafka } from '../pipeline/kafka-client';
import { runIngestService } from '../ingest/service';
import { createLogger, type Logger } from '../log';
import { connectClient } from '../temporal/client';
import { applySchedules } from '../temporal/schedules';
import { createWorkerService, installRuntime, WORKER_SHUTDOWN_GRACE_MS, WorkerStartAbortedError, type WorkerService } from '../worker/service';
import { stopWithin, untilSignal } from './stop';
import { runMigrations } from './migrate';

/** The grace a stopping worker gives its running steps (WORKER_SHUTDOWN_GRACE_MS), in seconds, for the message. */
const WORKER_STEP_GRACE_S = WORKER_SHUTDOWN_GRACE_MS / 1000;
/**
 * Above the worker's grace and the cancellation after it, so a job step ending as it should
 * is not reported as Postgres or Kafka not answering. An interactive command: no supervisor's
 * 30 s to stay under, as `hunt ingest` and `hunt worker` have.
 */
const MAIN_JOB_STOP_DEADLINE_MS = WORKER_SHUTDOWN_GRACE_MS + 20_000;

export interface MainJobOptions {
  rate: number;
  demo: boolean;
  worker: boolean;
  duration?: number;
}

export async function runMainJob(opts: MainJobOptions): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel, logFormat: config.logFormat }, 'hunt');
  console.log('Starting the embedded stack (the first run builds the Temporal CLI and fetches Kafka; later runs take seconds)...');
  const statuses = await stackUp(config);
  console.log(formatStatuses(statuses));
  const stack = watchEmbedded(config, statuses);
  const applied = await runMigrations(config);
  console.log(`database schema: ${applied.length === 0 ? 'up to date' : `applied ${applied.join(', ')}`}`);

  // An embedded service that dies while ingest waits for Kafka ends that wait, naming it.
  const stackDied = new AbortController();
  stack.gone.catch((err: unknown) => stackDied.abort(err));
  const ingest = await runIngestService(config, logger, stackDied.signal);
  // Listened for from here: a Ctrl-C while the worker still waits for Temporal stops the
  // pipeline gracefully (the SDK took the signal over and only noted it, without a worker).
  const signalled = untilSignal(logger);
  const workerStart = new AbortController();
  let bySignal = false;
  void signalled.then(() => {
    bySignal = true;
    workerStart.abort();
  });
  // A part that dies while the worker waits for Temporal gives that wait up (nothing else
  // listens to them until then): the race below then stops everything, naming it.
  for (const part of [stack.gone, ingest.failed]) part.catch(() => workerStart.abort());
  const worker = opts.worker
    ? await startWorker(config, logger, workerStart.signal).catch(async (err: unknown) => {
        if (err instanceof WorkerStartAbortedError) return undefined;
        // Ingest runs already (joined, maybe holding records): stopped as at any other end,
        // its buffer committed and its group left, before the failure ends the process.
        // Thrown, it was cut off by the exit, and its partitions waited out the session timeout.
        console.error(`hunt start: stopping everything: ${(err as Error).message}`);
        stack.stop();
        await stopWithin(() => ingest.stop(), logger, { deadlineMs: MAIN_JOB_STOP_DEADLINE_MS });
        throw err;
      })
    : undefined;
  const stop = new AbortController();
  // The demo producer rides out a Kafka outage (it drops what it could not send), and
  // nothing of it stops the pipeline: its failure to start is logged, not fatal.
  let failedSends = 0;
  const demo = opts.demo
    ? produceTraffic(
        createKafka(config, logger, `${config.kafka.clientId}-demo`),
        new TrafficGenerator({ hunts: 3, playersPerHunt: 25, duplicateFraction: 0.02, invalidFraction: 0.01, lateClaimFraction: 0.05 }),
        {
          topic: config.kafka.topics.events,
          rate: opts.rate,
          signal: stop.signal,
          onSendError: (err) => {
            if (failedSends++ % 30 === 0) logger.warn({ err, failedSends }, 'demo producer: a send failed; its records are dropped and it goes on');
          },
        },
      ).catch((err: unknown) => {
        logger.error({ err }, 'demo producer stopped; the pipeline goes on without it');
        return 0;
      })
    : Promise.resolve(0);

  if (!workerStart.signal.aborted) console.log(`
Treasure Hunt Engine is running.
  Live leaderboard: ${ingest.apiUrl}/hunts/hunt-0   (demo hunts: hunt-0, hunt-1, hunt-2; a page that updates itself)
  Leaderboard JSON: ${ingest.apiUrl}/hunts/hunt-0/leaderboard   (pushes: ${ingest.apiUrl}/hunts/hunt-0/leaderboard/stream)
  Player:           ${ingest.apiUrl}/hunts/hunt-0/players/player-1
  Health, metrics:  ${ingest.apiUrl}/readyz   ${ingest.apiUrl}/metrics
  Temporal Web UI:  ${config.temporal.uiUrl ?? `(external server at ${config.temporal.address})`}
  Batch worker:     ${worker ? `task queue ${config.temporal.taskQueue}; Schedules ${worker.schedules.join(', ')}` : 'off'}
  Demo producer:    ${opts.demo ? `${opts.rate} events/s to ${config.kafka.topics.events}` : 'off'}
Stop with Ctrl-C; the stack keeps running (hunt stack down stops it).`);

  const timer = opts.duration ? new Promise<void>((resolve) => setTimeout(resolve, (opts.duration as number) * 1000)) : new Promise<void>(() => {});
  // A part that dies stops the whole command, with its reason: half a pipeline that looks
  // alive is worse than none.
  const died = await Promise.race([signalled, timer, stack.gone, ingest.failed, ...(worker ? [worker.failed] : [])]).then(
    () => undefined,
    (err: Error) => err,
  );
  // The log is at warn here: say it on the terminal, or a Ctrl-C seems to do nothing for seconds.
  console.error(
    died
      ? `hunt start: stopping everything: ${died.message}`
      : `hunt start: stopping (the batch in flight is committed, running job steps get ${WORKER_STEP_GRACE_S} s${bySignal ? '; Ctrl-C again exits at once' : ''})...`,
  );
  stop.abort();
  stack.stop();
  let sent = 0;
  // The producer's last send may wait on a Kafka that does not answer: beside the pipeline's
  // stop, not before it, and within the deadline too. The worker stops beside ingest, not
  // after it: its running steps get their grace time in the same deadline.
  await stopWithin(async () => {
    [sent] = await Promise.all([demo, ingest.stop(), worker?.stop().catch(() => undefined)]);
  }, logger, { deadlineMs: MAIN_JOB_STOP_DEADLINE_MS });
  if (died) throw died;
  console.log(`stopped (demo producer sent ${sent} records)`);
  process.exit(0);
}

/** The batch-plane worker in this process, with the Schedules applied so they have work to run. */
async function startWorker(config: Config, logger: Logger, signal: AbortSignal): Promise<{ schedules: string[]; failed: Promise<never>; stop(): Promise<void> }> {
  installRuntime(config.worker, 'WARN');
  const service: WorkerService = await createWorkerService(config, logger, config.temporal.taskQueue, signal);
  let stopping = false;
  const running = service.run();
  // The worker's run() settles only when it stops; before we asked, that is a failure.
  const failed = running.then(
    () => (stopping ? new Promise<never>(() => {}) : Promise.reject(new Error('the batch worker stopped unexpectedly'))),
    (err: Error) => Promise.reject(new Error(`the batch worker failed: ${err.message}`, { cause: err })),
  );
  failed.catch(() => undefined);
  const stop = async () => {
    stopping = true;
    // On Ctrl-C the SDK has begun shutting the worker down already; shutdown() covers --duration.
    if (service.worker.getState() === 'RUNNING') service.worker.shutdown();
    await running.catch(() => undefined);
    await service.close();
  };
  let schedules: string[];
  try {
    const { client, close } = await connectClient(config);
    try {
      schedules = (await applySchedules(client, config)).map((r) => r.scheduleId);
    } finally {
      await close();
    }
  } catch (err) {
    // The worker polls already: stopped (its steps get their grace), not cut off by the exit.
    await stop();
    throw err;
  }
  return { schedules, failed, stop };
}
