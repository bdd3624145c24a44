import { describe, expect, it } from 'vitest';
import { reportLines } from '../../src/cli/correctness';
import { CHECKS, type StoredCheck } from '../../src/store/correctness/data-quality';

const row = (check_name: string, finding_count: number): StoredCheck => ({ run_id: 'dq-1', check_name, severity: 'error', finding_count, repaired: null, checked_at: new Date('2026-12-07T03:00:00Z') });

describe('hunt dq report', () => {
  it('names every check, and says which the run has not stored (still running, or it failed before them)', () => {
    const names = CHECKS.map((c) => c.name);
    expect(names.length).toBeGreaterThan(2);
    const lines = reportLines([row(names[0]!, 0), row(names[1]!, 4)]);
    expect(lines).toHaveLength(names.length);
    expect(lines[1]).toMatch(new RegExp(`^${names[1]} +error +4`));
    for (const name of names.slice(2)) expect(lines.find((l) => l.startsWith(`${name} `))).toMatch(/not in this run: still running, or the run ended before it/);
  });

  it('says nothing is missing of a whole run', () => {
    const lines = reportLines(CHECKS.map((c) => row(c.name, 1)));
    expect(lines.some((l) => /not in this run/.test(l))).toBe(false);
  });
});
