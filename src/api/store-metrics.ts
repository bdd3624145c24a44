/**
 * Gauges read from Postgres at scrape time: what reconciliation found (drift recorded by
 * the batch plane) and the quarantine backlog, so dashboards see them beside the hot path's.
 */
import type pg from 'pg';
import { Gauge, type Registry } from 'prom-client';

export function registerStoreGauges(registry: Registry, pool: pg.Pool): void {
  new Gauge({
    name: 'hunt_reconcile_drift_records',
    help: 'Drift records reconciliation has written, by kind (player, treasure)',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      const { rows } = await pool.query<{ kind: string; n: number }>('SELECT kind, count(*)::int AS n FROM reconcile_drift GROUP BY kind');
      this.reset();
      for (const row of rows) this.set({ kind: row.kind }, row.n);
    },
  });
  new Gauge({
    name: 'hunt_reconcile_last_run_drift',
    help: 'Players and treasures that drifted in the most recent reconcile run',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      const { rows } = await pool.query<{ players: number; treasures: number }>(
        `SELECT coalesce(sum(players_drifted), 0)::int AS players, coalesce(sum(treasures_changed), 0)::int AS treasures
           FROM reconcile_runs WHERE run_id = (SELECT run_id FROM reconcile_runs ORDER BY reconciled_at DESC LIMIT 1)`,
      );
      this.set({ kind: 'player' }, rows[0]?.players ?? 0);
      this.set({ kind: 'treasure' }, rows[0]?.treasures ?? 0);
    },
  });
  new Gauge({
    name: 'hunt_quarantine_backlog',
    help: 'Quarantined records not yet replayed, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
    async collect() {
      const { rows } = await pool.query<{ reason: string; n: number }>(
        'SELECT reason, count(*)::int AS n FROM quarantine WHERE replayed_at IS NULL GROUP BY reason',
      );
      this.reset();
      for (const row of rows) this.set({ reason: row.reason }, row.n);
    },
  });
}
