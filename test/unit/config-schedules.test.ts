import { describe, expect, it } from 'vitest';
import { loadConfig, type ConfigError } from '../../src/config';
import { problemsOf } from '../helpers/config-problems';

/** The one problem loadConfig reports for env. */
function problemOf(env: Record<string, string>): ConfigError['problems'][number] {
  const problems = problemsOf(env);
  expect(problems).toHaveLength(1);
  return problems[0]!;
}

describe('schedule settings Temporal would refuse stop start-up, naming the variable', () => {
  it('loads the defaults', () => {
    expect(loadConfig({}).schedules).toEqual({ rollupFlushEvery: '1m', reconcileEvery: '5m', dataQualityCron: '0 3 * * *' });
  });

  // Temporal's server refuses an interval under 1 s and drops fractions of a second.
  it.each([
    ['ROLLUP_FLUSH_EVERY', '500ms'],
    ['ROLLUP_FLUSH_EVERY', '0s'],
    ['ROLLUP_FLUSH_EVERY', '1500ms'],
    ['ROLLUP_FLUSH_EVERY', '25h'],
    ['RECONCILE_EVERY', '0m'],
    ['RECONCILE_EVERY', '1\tm'],
    ['RECONCILE_EVERY', '2 days'],
  ])('refuses %s=%j', (variable, value) => {
    const problem = problemOf({ [variable]: value });
    expect(problem).toMatchObject({ variable, got: value });
    expect(problem.expected).toMatch(/from 1 s to 24 hours/);
  });

  it.each([
    ['ROLLUP_FLUSH_EVERY', '1s'],
    ['ROLLUP_FLUSH_EVERY', '1000ms'],
    ['ROLLUP_FLUSH_EVERY', '30 seconds'],
    ['RECONCILE_EVERY', '24h'],
    ['RECONCILE_EVERY', '5 minutes'],
  ])('takes %s=%j', (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).not.toThrow();
  });

  it.each(['99 3 * * *', '0 24 * * *', '0 3 0 * *', '0 3 * 13 *', '0 3 * * 8', '0 3 * *', '0 3 * * * *', '*/0 3 * * *', '0 5-3 * * *', '0 3 * * MO-X', 'a 3 * * *', '0 3 * JU *', '0 1,,2 * * *', '0 3/2/1 * * *'])(
    'refuses DATA_QUALITY_CRON=%j with the ranges each field takes',
    (cron) => {
      const problem = problemOf({ DATA_QUALITY_CRON: cron });
      expect(problem).toMatchObject({ variable: 'DATA_QUALITY_CRON', got: cron });
      expect(problem.expected).toMatch(/minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, weekday 0-7/);
    },
  );

  it.each(['0 3 * * *', '59 23 31 12 7', '*/15 0-6/2 1,15 * 1-5', '0 3 * JAN,jul MON-FRI', '30 4 * * sun', '0 3 * March TUE', '5/10 * * * *', '*/05 3 * * *', ' 0  3 * * * '])(
    'takes DATA_QUALITY_CRON=%j, as Temporal does',
    (cron) => {
      expect(loadConfig({ DATA_QUALITY_CRON: cron }).schedules.dataQualityCron).toBe(cron.trim());
    },
  );
});

describe('API_METRICS_REFRESH_MS', () => {
  it('refuses a refresh slower than HuntStoreMetricsStale allows (5 minutes), naming the variable', () => {
    expect(problemOf({ API_METRICS_REFRESH_MS: '900000' })).toMatchObject({ variable: 'API_METRICS_REFRESH_MS', got: '900000' });
    expect(problemOf({ API_METRICS_REFRESH_MS: '300001' }).expected).toMatch(/100-300000 \(HuntStoreMetricsStale/);
    expect(loadConfig({ API_METRICS_REFRESH_MS: '300000' }).api.metricsRefreshMs).toBe(300_000);
    expect(loadConfig({}).api.metricsRefreshMs).toBe(15_000);
  });
});
