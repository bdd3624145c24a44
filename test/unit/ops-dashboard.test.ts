/**
 * The Grafana dashboard of the ops pack (ops/grafana/treasure-hunt.json): a dashboard Grafana
 * imports, whose every PromQL expression parses (promtool checks it as a rule) and reads
 * only metrics that exist, so no panel shows "No data" because of a name.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { projectRoot } from '../../src/config';
import { PROMETHEUS_SERIES, TEMPORAL_SDK_METRICS, WORKER_OWN_METRICS, metricNamesIn, projectMetricNames } from '../helpers/metric-names';

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string }[];
}
interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown }[] };
}

const dashboard = JSON.parse(fs.readFileSync(path.join(projectRoot, 'ops', 'grafana', 'treasure-hunt.json'), 'utf8')) as Dashboard;
const dataPanels = dashboard.panels.filter((p) => p.type !== 'row');
const expressions = dataPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
const variables = dashboard.templating.list.filter((v) => v.type === 'query').map((v) => (v.query as { query: string }).query);

/** The dashboard's variables as Grafana would fill them in, for tools that know no variables. */
function withVariablesFilled(expr: string): string {
  return expr.replace(/\$__rate_interval/g, '1m').replace(/\$(instance|task_queue)\b/g, '.*');
}

describe('ops/grafana/treasure-hunt.json', () => {
  it('is a Grafana dashboard: title, uid, schemaVersion, panels with ids and places', () => {
    expect(dashboard.title).toBe('Treasure Hunt Engine');
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x + w, `${panel.title} fits the 24-column grid`).toBeLessThanOrEqual(24);
      expect([x, y, w, h].every((n) => Number.isInteger(n) && n >= 0), `${panel.title} gridPos`).toBe(true);
    }
    for (const panel of dataPanels) {
      expect(panel.datasource, `${panel.title} uses the dashboard's Prometheus variable`).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets?.length, `${panel.title} has queries`).toBeGreaterThan(0);
    }
  });

  it('has no two panels on the same cells', () => {
    const taken = new Map<string, string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      for (let row = y; row < y + h; row++) {
        for (let col = x; col < x + w; col++) {
          const cell = `${col},${row}`;
          expect(taken.get(cell), `${panel.title} overlaps ${taken.get(cell)}`).toBeUndefined();
          taken.set(cell, panel.title);
        }
      }
    }
  });

  it('covers the hot path, correctness and the Temporal SDK worker', () => {
    const all = expressions.map((e) => e.expr).join('\n');
    for (const metric of ['hunt_ingest_freshness_seconds_bucket', 'hunt_ingest_consumer_lag', 'hunt_ingest_stalled', 'hunt_quarantine_backlog', 'hunt_reconcile_last_run_drift', 'temporal_num_pollers', 'temporal_workflow_failed']) {
      expect(all, metric).toContain(metric);
    }
  });

  it('reads only metrics that exist: ours and the Temporal SDK worker\'s', async () => {
    const known = new Set([...(await projectMetricNames()), ...TEMPORAL_SDK_METRICS, ...WORKER_OWN_METRICS, ...PROMETHEUS_SERIES]);
    const queries = [...expressions, ...variables.map((query) => ({ panel: 'variable', expr: query.replace(/^label_values\((\w+),.*$/, '$1') }))];
    const unknown = queries.flatMap(({ panel, expr }) => metricNamesIn(expr).filter((name) => !known.has(name)).map((name) => `${panel}: ${name}`));
    expect(unknown).toEqual([]);
  });

  it('has PromQL that parses (promtool checks each expression as a recording rule)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-dashboard-'));
    try {
      const file = path.join(dir, 'dashboard-queries.yml');
      const rules = expressions.map(({ expr }, i) => ({ record: `dashboard:query_${i}`, expr: withVariablesFilled(expr) }));
      fs.writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      const output = await promisify(execFile)('promtool', ['check', 'rules', file]).then(
        ({ stdout }) => stdout,
        (err: NodeJS.ErrnoException & { stdout?: string; stderr?: string }) => {
          if (err.code === 'ENOENT') throw new Error("promtool is not on PATH: install Debian's `prometheus` package (infra/install-system-packages.sh)", { cause: err });
          throw new Error(`promtool rejects a dashboard query:\n${err.stdout ?? ''}${err.stderr ?? ''}`, { cause: err });
        },
      );
      expect(output).toContain(`SUCCESS: ${rules.length} rules found`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
