/**
 * `hunt slo`'s arithmetic on known counts, its text, and the hot path's per-minute tally
 * that feeds it (without a database: the store side is test/integration/freshness-slo.test.ts).
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { formatSloReport, sloReport } from '../../src/cli/slo-report';
import { FreshnessTally, startFreshnessRecorder } from '../../src/ingest/freshness-tally';
import { createLogger } from '../../src/log';

describe('sloReport', () => {
  it('computes share, late events, allowed late events and the budget used per window', () => {
    const [hour, day] = sloReport(
      [
        { label: 'last hour', window: '1h', events: 200_000, withinTarget: 199_950 },
        { label: 'last day', window: '1d', events: 4_000_000, withinTarget: 3_994_000 },
      ],
      0.999,
    );
    // Hour: 50 late of 200,000 allowed 200: a quarter of the budget, met.
    expect(hour).toMatchObject({ late: 50, share: 0.99975, met: true });
    expect(hour?.allowedLate).toBeCloseTo(200, 9);
    expect(hour?.budgetUsed).toBeCloseTo(0.25, 9);
    // Day: 6,000 late of 4,000,000 allowed 4,000: 150% of the budget, missed.
    expect(day).toMatchObject({ late: 6000, share: 0.9985, met: false });
    expect(day?.budgetUsed).toBeCloseTo(1.5, 9);
  });

  it('meets the objective exactly at the line, and misses it one event past', () => {
    const [atLine, past] = sloReport(
      [
        { label: 'a', window: 'a', events: 1000, withinTarget: 999 },
        { label: 'b', window: 'b', events: 1000, withinTarget: 998 },
      ],
      0.999,
    );
    expect(atLine).toMatchObject({ met: true });
    expect(atLine?.budgetUsed).toBeCloseTo(1, 9);
    expect(past).toMatchObject({ met: false });
  });

  it('says nothing is met or missed without events', () => {
    expect(sloReport([{ label: 'last hour', window: '1h', events: 0, withinTarget: 0 }], 0.999)[0]).toMatchObject({ share: null, budgetUsed: null, met: null });
  });

  it('refuses an objective outside (0, 1)', () => {
    expect(() => sloReport([], 99.9)).toThrow(/between 0 and 1/);
  });
});

describe('formatSloReport', () => {
  it('prints one aligned line per window with share, budget and status', () => {
    const report = sloReport(
      [
        { label: 'last hour', window: '1h', events: 200_000, withinTarget: 199_950 },
        { label: 'last day', window: '1d', events: 4_000_000, withinTarget: 3_994_000 },
      ],
      0.999,
    );
    const lines = formatSloReport(report, { targetMs: 50, objective: 0.999, otherTargets: [] });
    expect(lines[0]).toBe('Freshness SLO: events applied within 50 ms of their Kafka timestamp; objective 99.9%');
    expect(lines[2]).toMatch(/^window +events +within 50 ms +late +share +budget used +status$/);
    expect(lines[3]).toMatch(/^last hour +200,000 +199,950 +50 +99\.975% +25% +met$/);
    expect(lines[4]).toMatch(/^last day +4,000,000 +3,994,000 +6,000 +99\.85% +150% +MISSED$/);
    // Columns line up: the status column starts at the same place on every line.
    expect(new Set(lines.slice(2, 5).map((l) => l.search(/(status|met|MISSED)$/))).size).toBe(1);
  });

  it('points out counts against another target, and a database without counts', () => {
    const empty = sloReport([{ label: 'last hour', window: '1h', events: 0, withinTarget: 0 }], 0.999);
    expect(formatSloReport(empty, { targetMs: 50, objective: 0.999, otherTargets: [] }).join('\n')).toMatch(/No events counted: is `hunt ingest` running/);
    expect(formatSloReport(empty, { targetMs: 50, objective: 0.999, otherTargets: [100] }).join('\n')).toMatch(
      /also counted against 100 ms .* Set SLO_FRESHNESS_TARGET_MS the same for hunt ingest and hunt slo/,
    );
  });
});

describe('FreshnessTally', () => {
  const minute = Date.UTC(2026, 11, 2, 10, 30);

  it('counts events per commit minute, a freshness equal to the target as within', () => {
    const tally = new FreshnessTally(50);
    tally.observe(minute + 1000, [minute + 1000 - 10, minute + 1000 - 50, minute + 1000 - 51, minute + 1000 - 5000]);
    tally.observe(minute + 59_999, [minute + 59_990]);
    tally.observe(minute + 60_000, [minute + 59_990]);
    tally.observe(minute + 60_000, []);
    expect(tally.take()).toEqual([
      { minuteMs: minute, events: 5, withinTarget: 3 },
      { minuteMs: minute + 60_000, events: 1, withinTarget: 1 },
    ]);
    expect(tally.take()).toEqual([]);
  });

  it('keeps counts a write could not store and adds them to the next write', async () => {
    const tally = new FreshnessTally(50);
    const written: unknown[][] = [];
    let down = true;
    const pool = {
      query: async (_sql: string, params: unknown[]) => {
        if (down) throw new Error('connection refused');
        written.push(params);
        return { rows: [], rowCount: 0 };
      },
    } as unknown as pg.Pool;
    const recorder = startFreshnessRecorder({ pool, tally, logger: createLogger({ logLevel: 'silent' }), everyMs: 3_600_000 });
    tally.observe(minute + 10, [minute]);
    await recorder.write();
    expect(written).toEqual([]);
    down = false;
    tally.observe(minute + 20, [minute + 20 - 100]);
    await recorder.stop();
    // One upsert with both events (one late), then the hourly prune.
    expect(written[0]).toEqual([50, [minute], [2], [1]]);
    expect(tally.take()).toEqual([]);
  });
});
