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
import { backoffMs } from '../backoff';
import type { Logger } from '../log';
import { claimPendingCopies, markCopiesSent, newestPendingId, pendingCopies, releaseClaim, setCopiesAside, type Claim, type PendingCopy } from '../store/hot-path/dlq-outbox';
import { withTimeout } from '../time-limit';
import { failureCode, type DlqSender } from './dlq';
import type { IngestMetrics } from './metrics';

/** Record bytes per claim: what one pass holds in memory (a reject keeps at most 1 MiB of key and of value). */
const CLAIM_MAX_BYTES = 8 * 1024 * 1024;
const CLAIM_MAX_ROWS = 1000;
/**
 * How long a claim keeps the other members off its rows. Each send's rows are marked sent as
 * it is acknowledged, so a lease that runs out during a slow pass (kafkajs may retry one
 * send for minutes) costs at most second copies of the rows not sent yet.
 */
export const CLAIM_LEASE_MS = 120_000;
/**
 * How long a copy the DLQ topic refused for the record itself (a compacted DLQ and a reject
 * without a key) stays out of the passes before it is tried again: half the time it has
 * waited since it was quarantined, at least REFUSED_RETRY_MS and at most REFUSED_RETRY_MAX_MS
 * (setCopiesAside). Long enough that its sends cost nothing, and longer each time it is
 * refused again, so the refused copies tried an hour dwindle as they age and the copies
 * behind them get the passes; short enough that a topic put right takes them all without
 * anyone's help, within the cap.
 */
export const REFUSED_RETRY_MS = 10 * 60_000;
export const REFUSED_RETRY_MAX_MS = 6 * 3_600_000;
const REFUSED_SET_ASIDE = { minMs: REFUSED_RETRY_MS, maxMs: REFUSED_RETRY_MAX_MS };
/** How often an idle relay looks for rows other members (or a run before this one) left. */
const POLL_MS = 1_000;
/** How often the gauges are read from Postgres (a count over the waiting rows), whatever the passes do. */
const GAUGE_EVERY_MS = 5_000;
/** The gauges count the waiting copies up to this many (at least this many, past it). */
const GAUGE_COUNT_CAP = 100_000;
const RETRY_BASE_MS = 250;
const RETRY_MAX_MS = 30_000;

export interface DlqRelayDeps {
  pool: pg.Pool;
  sender: DlqSender;
  /** The input topic whose rejects this relay copies. */
  topic: string;
  metrics: IngestMetrics;
  logger: Logger;
  /** How often an idle relay looks for copies (POLL_MS); tests set it long, to see what goes on at once. */
  pollMs?: number;
}

export interface DlqRelay {
  /** Rejects were just quarantined: look now rather than at the next poll. */
  wake(): void;
  /**
   * Sends the copies waiting when it is called, for up to `timeoutMs`, then stops; the rest
   * (and what other members add meanwhile) wait in quarantine for the next run or another member.
   */
  stop(timeoutMs: number): Promise<void>;
}

export function startDlqRelay(deps: DlqRelayDeps): DlqRelay {
  const { pool, sender, topic, metrics, logger } = deps;
  let stopping = false;
  /** Ends the current sleep early (a no-op when none). */
  let cutSleep: () => void = () => undefined;
  let woken = false;
  /**
   * A backoff after a failure is not cut by new rejects: the hot path wakes the relay at every
   * commit that quarantined some, and a DLQ refusing every send (authorization, say) was then
   * tried pass after pass, each claiming and releasing the same rows, for as long as it lasted.
   */
  let backingOff = false;
  const wake = () => {
    woken = true;
    if (!backingOff) cutSleep();
  };
  const sleep = (ms: number, backoff: boolean) =>
    new Promise<void>((resolve) => {
      if (stopping || (woken && !backoff)) return resolve();
      backingOff = backoff;
      const end = () => {
        clearTimeout(timer);
        backingOff = false;
        cutSleep = () => undefined;
        resolve();
      };
      const timer = setTimeout(end, ms);
      cutSleep = end;
    });

  /** The claim being sent, if any: a stop that runs out of time gives it up. */
  let inFlight: Claim | undefined;
  /** One claim, sent send by send, each marked as it is acknowledged; how many copies went and how many were set aside. */
  const relayOnce = async (upToId?: number): Promise<{ sent: number; setAside: number; full: boolean }> => {
    const claim = await claimPendingCopies(pool, { topic, maxBytes: CLAIM_MAX_BYTES, maxRows: CLAIM_MAX_ROWS, leaseMs: CLAIM_LEASE_MS, upToId });
    if (claim.copies.length === 0) return { sent: 0, setAside: 0, full: false };
    inFlight = claim;
    let sent = 0;
    const setAside: { copy: PendingCopy; reason: string; retryInMs: number }[] = [];
    const onSent = async (copies: PendingCopy[]) => {
      await markCopiesSent(pool, copies.map((c) => c.id));
      metrics.dlqCopiesSent.inc(copies.length);
      sent += copies.length;
    };
    const onRefused = async (copy: PendingCopy, reason: string) => {
      // Not when another relay has claimed the row since (this claim's lease ran out): it is that relay's.
      const [retryInMs] = await setCopiesAside(pool, claim, [copy.id], reason, REFUSED_SET_ASIDE);
      if (retryInMs === undefined) return;
      metrics.dlqCopiesSetAside.inc();
      setAside.push({ copy, reason, retryInMs });
    };
    try {
      await sender.send(claim.copies, onSent, onRefused);
    } catch (err) {
      // The rest would wait out the lease before anyone, this relay too, tried them again.
      await releaseClaim(pool, claim).catch(() => undefined);
      throw err;
    } finally {
      inFlight = undefined;
      // One line a pass, not one a copy: a topic that refuses every copy would log a thousand.
      const first = setAside[0];
      if (first) {
        logger.error(
          { setAside: setAside.length, first: { source: `${first.copy.topic}/${first.copy.partition}@${first.copy.offset}`, reason: first.reason, retryInMs: Math.round(first.retryInMs) } },
          'DLQ topic refuses copies for the records themselves; they are set aside and tried again later, the copies behind them go on (quarantine keeps them)',
        );
      }
    }
    return { sent, setAside: setAside.length, full: claim.full };
  };

  let reading = false;
  const observePending = async () => {
    if (reading) return;
    reading = true;
    try {
      const pending = await pendingCopies(pool, topic, GAUGE_COUNT_CAP);
      metrics.dlqCopiesPending.set(pending.count);
      metrics.dlqCopiesRefused.set(pending.refused);
      metrics.dlqOldestPendingSeconds.set(pending.oldestSeconds);
    } catch {
      // Postgres away: the gauges keep their last values; the relay's failures say why.
    } finally {
      reading = false;
    }
  };
  const gauges = setInterval(() => void observePending(), GAUGE_EVERY_MS);
  gauges.unref();
  void observePending();

  const loop = async () => {
    let failures = 0;
    while (!stopping) {
      woken = false;
      let delay = deps.pollMs ?? POLL_MS;
      let backoff = false;
      try {
        const { sent, setAside, full } = await relayOnce();
        if (failures > 0 && sent > 0) {
          logger.info({ afterFailures: failures }, 'DLQ copies are going out again');
          failures = 0;
        }
        // More may wait. A pass that sent nothing but set copies aside goes on at once only
        // when its claim stopped at a limit, rows or bytes (copies the topic may take can wait
        // behind: a claim of 8 refused copies of 1 MiB followed by a 1 s pause held them at 8
        // refused copies a second); otherwise a topic that refuses every copy would cost a
        // pass after pass, not one a second.
        if (sent > 0 || (setAside > 0 && full)) delay = 0;
      } catch (err) {
        failures++;
        metrics.dlqRelayFailures.inc();
        delay = backoffMs(failures, RETRY_BASE_MS, RETRY_MAX_MS);
        backoff = true;
        logger.warn(
          { err, code: failureCode(err), failures, retryInMs: delay },
          'could not copy rejects to the DLQ; they stay quarantined and are sent when it works again (the stream goes on)',
        );
      }
      if (delay > 0) await sleep(delay, backoff);
    }
  };

  /** After the lanes are drained: the copies waiting now go out if they can (not those other members add meanwhile). */
  const sendWaiting = async () => {
    const upToId = await newestPendingId(pool, topic);
    for (;;) {
      const { sent, setAside } = await relayOnce(upToId);
      if (sent + setAside === 0) break;
    }
  };

  const running = loop();
  return {
    wake,
    async stop(timeoutMs) {
      stopping = true;
      clearInterval(gauges);
      cutSleep();
      await withTimeout(running.then(sendWaiting), timeoutMs).catch(async (err: unknown) => {
        logger.warn({ err }, 'DLQ copies left unsent at stop; they stay quarantined and the next run or another member sends them');
        // Not under this member's lease for 2 minutes: the others may take them at once.
        if (inFlight) await releaseClaim(pool, inFlight).catch(() => undefined);
      });
    },
  };
}
