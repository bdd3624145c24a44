/**
 * The correctness plane from the terminal: `hunt reconcile`, `hunt dq run|report`,
 * `hunt dlq list|replay`. Jobs start the same workflows, with the same JSON, as the Web UI.
 */
import { Option, type Command } from 'commander';
import { MAX_RECONCILE_HUNT_IDS, REJECT_REASONS } from '../constants';
import { loadConfig } from '../config';
import { CHECKS, storedReport, type StoredCheck } from '../store/correctness/data-quality';
import { REFUSED_RETRY_MAX_MS, REFUSED_RETRY_MS } from '../ingest/dlq-relay';
import { createPool } from '../store/pool';
import { pendingCopies } from '../store/hot-path/dlq-outbox';
import { toDetailText } from '../events/detail-text';
import { latestWaiting, quarantineByReason, type WaitingRecord } from '../store/read/quarantine-backlog';
import { huntId, isoTime, listOf, positiveInt } from './arguments';
import { startJob } from './start-job';

async function withPool<T>(fn: (pool: import('pg').Pool) => Promise<T>): Promise<T> {
  const pool = createPool(loadConfig(), 2);
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

/** How a listed record's DLQ copy stands, when it has not gone yet. */
function dlqMark(record: Pick<WaitingRecord, 'dlq_pending' | 'dlq_refused'>): string {
  if (!record.dlq_pending) return '';
  return record.dlq_refused ? ` [DLQ copy refused, tried again in ${REFUSED_RETRY_MS / 60_000} min to ${REFUSED_RETRY_MAX_MS / 3_600_000} h: ${toDetailText(record.dlq_refused)}]` : ' [DLQ copy not sent yet]';
}

/**
 * A quarantined record as `hunt dlq list` prints it. Its source is escaped like its detail (a
 * backfill file's is `file:<path>`, with whatever bytes the file's name held): an escape
 * sequence there would redraw the operator's terminal.
 */
/**
 * A stored report, one line per check, every check named: a run stores each check's row as it
 * finishes, so the latest run may be one still going, or one that failed on a check, and its
 * missing checks (errors among them) would otherwise just not be listed.
 */
export function reportLines(rows: readonly StoredCheck[], checkNames: readonly string[] = CHECKS.map((c) => c.name)): string[] {
  const stored = new Set(rows.map((r) => r.check_name));
  const lines = rows.map((r) => `${r.check_name.padEnd(28)} ${r.severity.padEnd(8)} ${String(r.finding_count).padStart(7)}  ${r.repaired ? `repaired ${JSON.stringify(r.repaired)}` : ''}`);
  const missing = checkNames.filter((name) => !stored.has(name));
  for (const name of missing) lines.push(`${name.padEnd(28)} not in this run: still running, or the run ended before it (see the run in the Web UI or \`hunt jobs\`)`);
  return lines;
}

export function quarantinedLine(r: WaitingRecord): string {
  return `#${r.id} ${r.reason} ${toDetailText(r.source_topic)}/${r.source_partition}@${r.source_offset}${dlqMark(r)}: ${r.detail}`;
}

export function registerCorrectnessCommands(program: Command): void {
  program
    .command('reconcile')
    .description('recompute hunts from raw events, record drift, repair live projections (workflow `reconcile`)')
    .option('--hunt <huntId...>', `only these hunts, at most ${MAX_RECONCILE_HUNT_IDS} (default: hunts with events since the last run)`, listOf(huntId, MAX_RECONCILE_HUNT_IDS, 'hunts'))
    .option('--no-repair', 'record drift only')
    .option('--wait', 'wait for the result')
    .action(async (opts: { hunt?: string[]; repair: boolean; wait?: boolean }) => {
      await startJob('reconcile', { ...(opts.hunt ? { huntIds: opts.hunt } : {}), ...(opts.repair ? {} : { repair: false }) }, !!opts.wait);
    });

  const dq = program.command('dq').description('data-quality checks');
  dq.command('run')
    .description('run every check (workflow `dataQuality`)')
    .option('--repair', 'fix what can be fixed and record it')
    .option('--wait', 'wait for the result')
    .action(async (opts: { repair?: boolean; wait?: boolean }) => {
      await startJob('dataQuality', opts.repair ? { repair: true } : {}, !!opts.wait);
    });
  dq.command('report')
    .description('the latest stored report, one line per check')
    .option('--run <runId>', 'a given run instead of the latest')
    .action(async (opts: { run?: string }) => {
      await withPool(async (pool) => {
        const rows = await storedReport(pool, opts.run ?? null);
        const first = rows[0];
        if (!first && opts.run !== undefined) {
          console.error(`no data-quality report of run ${opts.run} (\`hunt dq report\` shows the latest; run ids are the workflow ids)`);
          process.exitCode = 1;
          return;
        }
        if (!first) return console.log('no data-quality report yet: run `hunt dq run`');
        console.log(`run ${first.run_id} at ${first.checked_at.toISOString()}`);
        for (const line of reportLines(rows)) console.log(line);
      });
    });

  const dlq = program.command('dlq').description('quarantined (dead-lettered) records');
  dlq
    .command('list')
    .description('quarantine backlog by reason, and the latest records')
    .addOption(new Option('--reason <reason>', 'only this reason').choices(REJECT_REASONS))
    .option('-n, --limit <n>', 'latest records to show', positiveInt, 10)
    .action(async (opts: { reason?: string; limit: number }) => {
      await withPool(async (pool) => {
        const byReason = await quarantineByReason(pool);
        for (const r of byReason) console.log(`${r.reason.padEnd(18)} waiting ${r.waiting}  replayed ${r.replayed}`);
        const copies = await pendingCopies(pool, null);
        if (copies.count > 0) {
          const refused = copies.refused > 0 ? `, ${copies.refused} refused by the DLQ topic for the record itself` : '';
          console.log(`DLQ copies not sent yet: ${copies.count} (oldest ${Math.round(copies.oldestSeconds)} s${refused}; see docs/operators.md#huntdlqcopieswaiting)`);
        }
        const rows = await latestWaiting(pool, opts.reason ?? null, opts.limit);
        for (const r of rows) console.log(quarantinedLine(r));
      });
    });
  dlq
    .command('replay')
    .description('re-validate quarantined records and ingest the ones now valid (workflow `dlqReplay`)')
    .addOption(new Option('--reason <reason...>', 'only these reasons').choices(REJECT_REASONS))
    .option('--from <iso>', 'quarantined at or after', isoTime)
    .option('--to <iso>', 'quarantined before', isoTime)
    .option('--dry-run', 'count what would be ingested')
    .option('--wait', 'wait for the result')
    .action(async (opts: { reason?: string[]; from?: string; to?: string; dryRun?: boolean; wait?: boolean }, command: Command) => {
      if (opts.from !== undefined && opts.to !== undefined && opts.from >= opts.to) command.error(`error: --from (${opts.from}) must be before --to (${opts.to})`);
      const input = {
        ...(opts.reason ? { reasons: opts.reason } : {}),
        ...(opts.from ? { from: opts.from } : {}),
        ...(opts.to ? { to: opts.to } : {}),
        ...(opts.dryRun ? { dryRun: true } : {}),
      };
      await startJob('dlqReplay', input, !!opts.wait);
    });
}
