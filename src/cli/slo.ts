/**
 * `hunt slo`: the share of events the hot path applied within the freshness target over the
 * last hour and day, against the objective, from the per-minute counts that ingest
 * processes store in Postgres (src/ingest/freshness-tally.ts).
 */
import type { Command } from 'commander';
import { loadConfig } from '../config';
import { otherFreshnessTargets, readFreshnessWindows } from '../store/hot-path/freshness-minutes';
import { createPool } from '../store/pool';
import { SqlState, sqlStateOf } from '../store/sql-state';
import { formatSloReport, sloReport } from './slo-report';

const HOUR_MS = 3_600_000;
const WINDOWS = [
  { label: 'last hour', window: '1h', spanMs: HOUR_MS },
  { label: 'last day', window: '1d', spanMs: 24 * HOUR_MS },
];

const WHERE_THE_NUMBERS_COME_FROM = `
Where the numbers come from: every \`hunt ingest\` process counts, per minute, the events it
commits and how many of them committed within SLO_FRESHNESS_TARGET_MS of the record's Kafka
timestamp (the same measurement as hunt_ingest_freshness_seconds), and adds the counts to the
freshness_minutes table every 10 seconds. So the report covers every ingest process, survives
restarts, needs no Prometheus, and is exact for the configured target (a Prometheus
histogram is exact only at its bucket bounds). Windows run to the minute, the current one
included. Not counted: events of backfills and DLQ replays (not live traffic), and the counts
of the last 10 seconds of a process that crashed. The alert rules (ops/prometheus) compute the
same share from the histogram for burn-rate alerts.

Settings: SLO_FRESHNESS_TARGET_MS (default 50; hunt ingest counts against it, so set it the
same for both), SLO_OBJECTIVE (default 0.999).`;

export function registerSloCommand(program: Command): void {
  program
    .command('slo')
    .description('share of events applied within the freshness target over the last hour and day, against the objective')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', WHERE_THE_NUMBERS_COME_FROM)
    .action(async (opts: { json?: boolean }) => {
      const config = loadConfig();
      const { freshnessTargetMs: targetMs, objective } = config.slo;
      const pool = createPool(config, 1);
      try {
        const now = Date.now();
        const counts = await readFreshnessWindows(pool, targetMs, WINDOWS.map((w) => w.spanMs), now);
        const otherTargets = await otherFreshnessTargets(pool, targetMs, now - 24 * HOUR_MS);
        const report = sloReport(
          WINDOWS.map((w, i) => ({ label: w.label, window: w.window, events: counts[i]?.events ?? 0, withinTarget: counts[i]?.withinTarget ?? 0 })),
          objective,
        );
        if (opts.json) {
          console.log(JSON.stringify({ targetMs, objective, asOf: new Date(now).toISOString(), windows: report, otherTargets }, null, 2));
        } else {
          for (const line of formatSloReport(report, { targetMs, objective, otherTargets })) console.log(line);
        }
      } catch (err) {
        if (sqlStateOf(err) === SqlState.undefinedTable) {
          throw new Error('the database has no freshness_minutes table yet: run `hunt migrate` (and restart hunt ingest so it counts)', { cause: err });
        }
        throw err;
      } finally {
        await pool.end();
      }
    });
}
