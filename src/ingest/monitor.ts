/**
 * A timer that looks at every partition of the input topic whether or not anything commits:
 * the broker's high watermarks against the offsets in Postgres give the lag, and an offset
 * that does not move while records wait is a stall. Each tick also refreshes the stall
 * gauges and logs a change of readiness, so a stall reaches the log and the metrics within
 * the stall limit even when nobody polls /readyz.
 */
import type { Logger } from '../log';
import type { IngestHealth } from './health';
import type { Watermarks } from './positions';

export interface MonitorDeps {
  health: IngestHealth;
  topic: string;
  intervalMs: number;
  watermarks: () => Promise<Map<number, Watermarks>>;
  /** The stored positions, and whether a standby served them (loadOffsetsAsServed). */
  storedOffsets: () => Promise<{ offsets: Map<number, bigint>; fromStandby: boolean }>;
  /**
   * Retention deleted every record of an assigned partition from its stored offset on, and
   * nothing newer waits: no fetch will ever bring a batch whose start shows the gap, so the
   * monitor reports it ([from, to) lost).
   */
  onIdleGap: (partition: number, from: bigint, to: bigint) => Promise<void>;
  /**
   * Compares the stored positions with what the process knows Postgres held (read before
   * them): a partition that takes no new record never commits, so only this finds there that
   * Postgres went back in time. Not with positions a standby served: one that lags the
   * primary (a failover under way, routing that lags it) showed positions behind, lost
   * nothing, and the process stopped as if Postgres had lost its commits.
   */
  positionFloors?: () => { check(stored: Map<number, bigint>): void };
  logger: Logger;
}

export function startPartitionMonitor(deps: MonitorDeps): { stop(): void; tick(): Promise<void> } {
  let lastReason: string | undefined;
  let lastLoggedAt = -Infinity;
  let observing: { since: number; done: Promise<void> } | undefined;
  const observe = async () => {
    try {
      const floors = deps.positionFloors?.();
      const [marks, served] = await Promise.all([deps.watermarks(), deps.storedOffsets()]);
      const stored = served.offsets;
      if (!served.fromStandby) floors?.check(stored);
      deps.health.observePartitions(marks, stored, deps.topic);
      for (const partition of deps.health.assignedPartitions()) {
        const offset = stored.get(partition);
        const mark = marks.get(partition);
        if (offset !== undefined && mark && offset < mark.low && mark.low === mark.high) await deps.onIdleGap(partition, offset, mark.low);
      }
    } catch (err) {
      // Kafka or Postgres unreachable: /readyz says so itself, and past the stall limit so do
      // the stall gauge and the log (an outage while positions load leaves no lane busy).
      deps.health.markUnobserved();
      deps.logger.debug({ err }, 'partition monitor could not read watermarks or offsets');
    }
  };
  /** The stall gauges refreshed (status() sets them) and a change of readiness logged. */
  const report = () => {
    const status = deps.health.status();
    const reason = status.ready ? undefined : status.reason;
    const now = performance.now();
    if (reason && (!lastReason || now - lastLoggedAt > 60_000)) {
      deps.logger.error({ reason }, 'ingest not ready');
      lastLoggedAt = now;
    } else if (!reason && lastReason) {
      deps.logger.info('ingest ready again');
    }
    lastReason = reason;
  };
  // Reported on every interval, whether or not the last observation has answered: a Postgres
  // that stops answering without closing its connections held a tick for the 2-minute query
  // timeout, and the stall gauges and the log with it (a stalled lane showed 0 for 120 s,
  // four times the stall limit). An observation still waiting counts as none since it began.
  const timer = setInterval(() => {
    if (!observing) {
      const since = performance.now();
      observing = { since, done: observe().finally(() => (observing = undefined)) };
    } else if (performance.now() - observing.since > deps.intervalMs) {
      deps.health.markUnobserved(observing.since);
    }
    report();
  }, deps.intervalMs);
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    async tick() {
      await observe();
      report();
    },
  };
}
