/**
 * The DLQ relay: sends the copies of the hot path's rejects to the DLQ topic from the
 * quarantine rows that wait for them (src/store/hot-path/dlq-outbox.ts), after the
 * micro-batches that quarantined them have committed.
 *
 * Why after, not before: a DLQ that refuses every send (its topic deleted where `hunt ingest`
 * may not create it, WRITE not granted, too few in-sync replicas) held the micro-batch with a
 * reject, everything behind it in its lane, and every partition of that broker, for as long
 * as it lasted. Now the stream goes on, each reject is quarantined with its micro-batch (so
 * nothing is lost, DESIGN invariant 2), and only the copies wait, counted
 * (`hunt_ingest_dlq_copies_pending`, `hunt_ingest_dlq_oldest_pending_seconds`) and alerted on.
 *
 * Every member of the group runs one; they claim rows for a lease, so each copy is sent by
 * one of them, and a member that dies mid-send leaves its rows to the others when the lease
 * ends (a copy may then go twice: the DLQ is at-least-once, quarantine exactly-once).
 */
import type pg from 'pg';
import type { Logger } from '../log';
import { claimPendingCopies, markCopiesSent, pendingCopies, releaseClaims } from '../store/hot-path/dlq-outbox';
import { withTimeout } from '../time-limit';
import { failureCode, type DlqSender } from './dlq';
import type { IngestMetrics } from './metrics';

/** Record bytes per claim: what one pass holds in memory (a reject keeps at most 1 MiB of key and of value). */
const CLAIM_MAX_BYTES = 8 * 1024 * 1024;
const CLAIM_MAX_ROWS = 1000;
/**
 * How long a claim keeps the other members off its rows. Longer than a send that ends at
 * all takes (kafkajs gives up on a request after its retries, well under a minute), so a
 * slow send is not sent twice; short enough that a dead member's rows wait only minutes.
 */
export const CLAIM_LEASE_MS = 120_000;
/** How often an idle relay looks for rows other members (or a run before this one) left. */
const POLL_MS = 1_000;
const RETRY_BASE_MS = 250;
const RETRY_MAX_MS = 30_000;

export interface DlqRelayDeps {
  pool: pg.Pool;
  sender: DlqSender;
  metrics: IngestMetrics;
  logger: Logger;
  /** Tests shorten the idle poll. */
  pollMs?: number;
}

export interface DlqRelay {
  /** Rejects were just quarantined: look now rather than at the next poll. */
  wake(): void;
  /** Sends what waits for up to `timeoutMs` (the next run or another member sends the rest), then stops. */
  stop(timeoutMs: number): Promise<void>;
}

export function startDlqRelay(deps: DlqRelayDeps): DlqRelay {
  const { pool, sender, metrics, logger } = deps;
  let stopping = false;
  let wakeUp: () => void = () => undefined;
  let woken = false;
  const wake = () => {
    woken = true;
    wakeUp();
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (woken) return resolve();
      const timer = setTimeout(resolve, ms);
      wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  /** One claim, sent and marked; the number of copies sent. */
  const relayOnce = async (): Promise<number> => {
    const copies = await claimPendingCopies(pool, { maxBytes: CLAIM_MAX_BYTES, maxRows: CLAIM_MAX_ROWS, leaseMs: CLAIM_LEASE_MS });
    if (copies.length === 0) return 0;
    try {
      await sender.send(copies);
    } catch (err) {
      // Or they would wait out the lease before anyone, this relay too, tried them again.
      await releaseClaims(pool, copies.map((c) => c.id)).catch(() => undefined);
      throw err;
    }
    await markCopiesSent(pool, copies.map((c) => c.id));
    metrics.dlqCopiesSent.inc(copies.length);
    return copies.length;
  };

  const observePending = async () => {
    const pending = await pendingCopies(pool);
    metrics.dlqCopiesPending.set(pending.count);
    metrics.dlqOldestPendingSeconds.set(pending.oldestSeconds);
  };

  const loop = async () => {
    let failures = 0;
    while (!stopping) {
      woken = false;
      let delay = deps.pollMs ?? POLL_MS;
      try {
        const sent = await relayOnce();
        if (failures > 0 && sent > 0) {
          logger.info({ afterFailures: failures }, 'DLQ copies are going out again');
          failures = 0;
        }
        if (sent > 0) delay = 0; // more may wait
      } catch (err) {
        failures++;
        metrics.dlqRelayFailures.inc();
        delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(failures, 16));
        logger.warn(
          { err, code: failureCode(err), failures, retryInMs: delay },
          'could not copy rejects to the DLQ; they stay quarantined and are sent when it works again (the stream goes on)',
        );
      }
      await observePending().catch(() => undefined);
      if (delay > 0) await sleep(delay);
    }
  };

  /** After the lanes are drained: what they quarantined last goes out now if it can. */
  const flushPending = async () => {
    for (;;) {
      if ((await relayOnce()) === 0) return;
    }
  };

  const running = loop();
  return {
    wake,
    async stop(timeoutMs) {
      stopping = true;
      wake();
      await withTimeout(running.then(flushPending), timeoutMs).catch((err: unknown) =>
        logger.warn({ err }, 'DLQ copies left unsent at stop; they stay quarantined and the next run or another member sends them'),
      );
    },
  };
}
