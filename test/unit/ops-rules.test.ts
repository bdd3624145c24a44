/**
 * The Prometheus rules of the ops pack (ops/prometheus/): valid for promtool, unit-tested
 * with `promtool test rules` (every alert fires on a synthetic series and stays silent on a
 * healthy one), over metrics that exist, each alert with a severity and a runbook section.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { projectRoot } from '../../src/config';
import { PROMETHEUS_SERIES, TEMPORAL_SDK_METRICS, WORKER_OWN_METRICS, metricNamesIn, projectMetricNames } from '../helpers/metric-names';

const run = promisify(execFile);
const rulesDir = path.join(projectRoot, 'ops', 'prometheus');
const INSTALL_HINT =
  "promtool is not on PATH. It comes with Debian's `prometheus` package: run infra/install-system-packages.sh " +
  '(or `apt-get install --no-install-recommends prometheus`), or put a promtool binary from https://prometheus.io/download/ on PATH.';

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules: Rule[] = (parse(fs.readFileSync(path.join(rulesDir, 'alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert);

async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: rulesDir });
    return stdout + stderr;
  } catch (err) {
    const failure = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (failure.code === 'ENOENT') throw new Error(INSTALL_HINT, { cause: err });
    throw new Error(`promtool ${args.join(' ')} failed:\n${failure.stdout ?? ''}${failure.stderr ?? ''}`, { cause: err });
  }
}

describe('ops/prometheus', () => {
  beforeAll(async () => {
    await promtool('--version');
  });

  it('passes promtool check rules and check config', async () => {
    expect(await promtool('check', 'rules', 'alerts.yml')).toMatch(/SUCCESS: \d+ rules found/);
    expect(await promtool('check', 'config', 'prometheus.yml')).toMatch(/is valid prometheus config file/);
  });

  it('passes its promtool unit tests', async () => {
    expect(await promtool('test', 'rules', 'alerts.test.yml')).toMatch(/SUCCESS/);
  });

  it('tests every alert both firing and silent', () => {
    const tests = (parse(fs.readFileSync(path.join(rulesDir, 'alerts.test.yml'), 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    }).tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of alerts) {
      const cases = tests.filter((c) => c.alertname === alert);
      expect(cases.some((c) => (c.exp_alerts ?? []).length > 0), `${alert} fires in some test`).toBe(true);
      expect(cases.some((c) => (c.exp_alerts ?? []).length === 0), `${alert} stays silent in some test`).toBe(true);
    }
  });

  it('gives every alert a severity, a summary, a description and a runbook section that exists', () => {
    const operatorGuide = fs.readFileSync(path.join(projectRoot, 'docs', 'operators.md'), 'utf8');
    const anchors = new Set([...operatorGuide.matchAll(/^#+\s+(.+)$/gm)].map((m) => githubAnchor(m[1] as string)));
    for (const rule of alerts) {
      expect(['critical', 'warning'], `${rule.alert} severity`).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, `${rule.alert} summary`).toBeTruthy();
      expect(rule.annotations?.description, `${rule.alert} description`).toBeTruthy();
      const runbook = rule.annotations?.runbook ?? '';
      expect(runbook, `${rule.alert} runbook`).toMatch(/^docs\/operators\.md#/);
      expect(anchors, `${rule.alert}: docs/operators.md has a heading for ${runbook}`).toContain(runbook.split('#')[1]);
    }
    // And a row in the guide's table of alerts, which an operator reads first.
    const tabled = new Set([...operatorGuide.matchAll(/^\| `(Hunt\w+)` \|/gm)].map((m) => m[1]));
    expect(alerts.map((rule) => rule.alert).filter((alert) => !tabled.has(alert))).toEqual([]);
  });

  it('finds the metric names in PromQL (the check below relies on it)', () => {
    const expr = 'sum by (topic) (rate(foo_total{le="0.05", job=~"a|b"}[5m])) / on (k) group_left bar:ratio offset 30m and baz > 14.4 * 0.001 or absent(qux) unless x_count[$__rate_interval]';
    expect(metricNamesIn(expr).sort()).toEqual(['bar:ratio', 'baz', 'foo_total', 'qux', 'x_count']);
  });

  it('reads only metrics that exist: ours, the Temporal SDK worker\'s, Prometheus\'s own and recorded ones', async () => {
    const known = new Set([...(await projectMetricNames()), ...TEMPORAL_SDK_METRICS, ...WORKER_OWN_METRICS, ...PROMETHEUS_SERIES, ...rules.flatMap((r) => (r.record ? [r.record] : []))]);
    const unknown = rules.flatMap((r) => metricNamesIn(r.expr).filter((name) => !known.has(name)).map((name) => `${r.alert ?? r.record}: ${name}`));
    expect(unknown).toEqual([]);
  });
});

/** How GitHub (and most Markdown renderers) turn a heading into an anchor. */
function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');
}
