import { describe, expect, it } from 'vitest';
import { BatchSizing } from '../../src/ingest/sizing';

const fixed = () => new BatchSizing({ mode: 'fixed', maxBatchEvents: 1000, lingerMs: 1, freshnessTargetMs: 50 });
const adaptive = () => new BatchSizing({ mode: 'adaptive', maxBatchEvents: 1000, lingerMs: 1, freshnessTargetMs: 50 });

describe('BatchSizing after a micro-batch ran out of time', () => {
  it('holds later micro-batches to half of the one that failed, in both modes', () => {
    const sizing = fixed();
    expect(sizing.targetRecords).toBe(1000);
    sizing.tooBigToCommit(1000, 110_000);
    expect(sizing.targetRecords).toBe(500);
    sizing.tooBigToCommit(500, 110_000);
    expect(sizing.targetRecords).toBe(250);

    const withBacklog = adaptive();
    withBacklog.observe({ records: 500, transactionMs: 5, lag: 100_000 });
    expect(withBacklog.targetRecords).toBe(1000);
    withBacklog.tooBigToCommit(1000, 110_000);
    withBacklog.observe({ records: 400, transactionMs: 5, lag: 100_000 });
    expect(withBacklog.targetRecords).toBe(500);
  });

  it('rises again by a quarter per batch at the ceiling that would take less than half the time that failed, up to the maximum', () => {
    const sizing = fixed();
    sizing.tooBigToCommit(1000, 110_000);
    // A quarter bigger would take 75 s, past half of 110 s: Postgres is still that slow.
    sizing.observe({ records: 500, transactionMs: 60_000, lag: 0 });
    expect(sizing.targetRecords).toBe(500);
    // A batch below the ceiling says nothing about the ceiling.
    sizing.observe({ records: 100, transactionMs: 5, lag: 0 });
    expect(sizing.targetRecords).toBe(500);
    sizing.observe({ records: 500, transactionMs: 200, lag: 0 });
    expect(sizing.targetRecords).toBe(625);
    for (let i = 0; i < 10; i++) sizing.observe({ records: sizing.targetRecords, transactionMs: 200, lag: 0 });
    expect(sizing.targetRecords).toBe(1000);
  });

  it('takes a failure at once (a cancelled statement) as needing a second, and never goes below one record', () => {
    const sizing = fixed();
    sizing.tooBigToCommit(400, 3);
    sizing.observe({ records: 200, transactionMs: 450, lag: 0 });
    expect(sizing.targetRecords).toBe(200);
    sizing.observe({ records: 200, transactionMs: 300, lag: 0 });
    expect(sizing.targetRecords).toBe(250);

    sizing.tooBigToCommit(1, 110_000);
    expect(sizing.targetRecords).toBe(1);
  });

  it('limits a transaction to the ceiling while it is lowered, and not otherwise (a batch may pass its target by a slice)', () => {
    const sizing = fixed();
    expect(sizing.partLimit).toBe(Infinity);
    sizing.tooBigToCommit(800, 110_000);
    expect(sizing.partLimit).toBe(400);
    for (let i = 0; i < 10; i++) sizing.observe({ records: sizing.targetRecords, transactionMs: 200, lag: 0 });
    expect(sizing.partLimit).toBe(Infinity);
  });

  it('lowers the ceiling only: a failed batch bigger than the ceiling leaves it', () => {
    const sizing = fixed();
    sizing.tooBigToCommit(300, 110_000);
    sizing.tooBigToCommit(900, 110_000);
    expect(sizing.targetRecords).toBe(150);
  });
});
