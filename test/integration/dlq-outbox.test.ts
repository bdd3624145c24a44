/**
 * The DLQ outbox on the real Postgres (src/store/hot-path/dlq-outbox.ts): the hot path's
 * rejects wait in quarantine for their copies; relays claim them in order within a byte
 * budget, under a lease that keeps the group's other members off them, and give them up
 * when a send fails. Rejects of a backfill (no DLQ copy) never wait.
 */
import { describe, expect, it } from 'vitest';
import { claimPendingCopies, markCopiesSent, pendingCopies, releaseClaims } from '../../src/store/hot-path/dlq-outbox';
import { quarantineRecords, type RejectedRecord } from '../../src/store/hot-path/quarantine';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();
const KIB = 1024;

const reject = (offset: number, valueBytes: number, topic = 'hunt.events'): RejectedRecord => ({
  topic,
  partition: 0,
  offset: String(offset),
  key: Buffer.from('hunt-1'),
  value: Buffer.alloc(valueBytes, 0x7b),
  reason: 'invalid_json',
  detail: `reject ${offset}`,
});

describe('the DLQ outbox', () => {
  it('hands the waiting copies out in order, each to one relay, within the byte budget, and forgets them once sent', async () => {
    await withTransaction(db.pool, (client) => quarantineRecords(client, [reject(0, 10 * KIB), reject(1, 10 * KIB), reject(2, 10 * KIB), reject(3, 300 * KIB), reject(4, 1)], { copyToDlq: true }));
    await withTransaction(db.pool, (client) => quarantineRecords(client, [reject(0, 5, 'file:backfill.ndjson')]));
    expect((await pendingCopies(db.pool)).count).toBe(5);

    // The first two fit 25 KiB; the third starts past it.
    const first = await claimPendingCopies(db.pool, { maxBytes: 25 * KIB, maxRows: 100, leaseMs: 60_000 });
    expect(first.map((c) => c.offset)).toEqual(['0', '1']);
    expect(first[0]).toMatchObject({ topic: 'hunt.events', partition: 0, reason: 'invalid_json', detail: 'reject 0', key: Buffer.from('hunt-1') });
    expect(first[0]?.value?.length).toBe(10 * KIB);
    // Another member, meanwhile: the leased rows are not its; a row larger than the budget
    // goes alone rather than never.
    const second = await claimPendingCopies(db.pool, { maxBytes: 25 * KIB, maxRows: 100, leaseMs: 60_000 });
    expect(second.map((c) => c.offset)).toEqual(['2']);
    const alone = await claimPendingCopies(db.pool, { maxBytes: 25 * KIB, maxRows: 100, leaseMs: 60_000 });
    expect(alone.map((c) => c.offset)).toEqual(['3']);
    const third = await claimPendingCopies(db.pool, { maxBytes: 25 * KIB, maxRows: 100, leaseMs: 60_000 });
    expect(third.map((c) => c.offset)).toEqual(['4']);
    expect(await claimPendingCopies(db.pool, { maxBytes: 25 * KIB, maxRows: 100, leaseMs: 60_000 })).toEqual([]);

    // The first relay's send failed: its rows can be taken again at once.
    await releaseClaims(db.pool, first.map((c) => c.id));
    const retried = await claimPendingCopies(db.pool, { maxBytes: 25 * KIB, maxRows: 100, leaseMs: 60_000 });
    expect(retried.map((c) => c.offset)).toEqual(['0', '1']);

    await markCopiesSent(db.pool, [...retried, ...second, ...alone].map((c) => c.id));
    const left = await pendingCopies(db.pool);
    expect(left.count).toBe(1);
    expect(left.oldestSeconds).toBeGreaterThanOrEqual(0);
    await markCopiesSent(db.pool, third.map((c) => c.id));
    expect(await pendingCopies(db.pool)).toEqual({ count: 0, oldestSeconds: 0 });
  });

  it("lets another relay take a dead relay's rows once its lease ends", async () => {
    await withTransaction(db.pool, (client) => quarantineRecords(client, [reject(100, 10)], { copyToDlq: true }));
    const dead = await claimPendingCopies(db.pool, { maxBytes: KIB, maxRows: 10, leaseMs: 300 });
    expect(dead.map((c) => c.offset)).toEqual(['100']);
    expect(await claimPendingCopies(db.pool, { maxBytes: KIB, maxRows: 10, leaseMs: 60_000 })).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const taken = await claimPendingCopies(db.pool, { maxBytes: KIB, maxRows: 10, leaseMs: 60_000 });
    expect(taken.map((c) => c.offset)).toEqual(['100']);
    await markCopiesSent(db.pool, taken.map((c) => c.id));
  });

  it('keeps a redelivered reject once, with one copy to send', async () => {
    await withTransaction(db.pool, (client) => quarantineRecords(client, [reject(200, 10)], { copyToDlq: true }));
    const sent = await claimPendingCopies(db.pool, { maxBytes: KIB, maxRows: 10, leaseMs: 60_000 });
    await markCopiesSent(db.pool, sent.map((c) => c.id));
    await withTransaction(db.pool, (client) => quarantineRecords(client, [reject(200, 10)], { copyToDlq: true }));
    expect((await pendingCopies(db.pool)).count).toBe(0);
  });
});
