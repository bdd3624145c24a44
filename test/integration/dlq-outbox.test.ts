/**
 * The DLQ outbox on the real Postgres (src/store/hot-path/dlq-outbox.ts): the hot path's
 * rejects wait in quarantine for their copies; relays claim them in order within a byte
 * budget, under a lease that keeps the group's other members off them, and give up only
 * their own claims when a send fails. Rejects of a backfill (no DLQ copy) never wait, but a
 * reject the hot path meets again after a backfill quarantined it still gets its copy.
 */
import { describe, expect, it } from 'vitest';
import { claimPendingCopies, markCopiesSent, newestPendingId, pendingCopies, releaseClaim } from '../../src/store/hot-path/dlq-outbox';
import { quarantineRecords, type RejectedRecord } from '../../src/store/hot-path/quarantine';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();
const KIB = 1024;
const TOPIC = 'hunt.events';

const reject = (offset: number, valueBytes: number, topic = TOPIC): RejectedRecord => ({
  topic,
  partition: 0,
  offset: String(offset),
  key: Buffer.from('hunt-1'),
  value: Buffer.alloc(valueBytes, 0x7b),
  reason: 'invalid_json',
  detail: `reject ${offset}`,
});
const quarantine = (records: RejectedRecord[], copyToDlq: boolean) => withTransaction(db.pool, (client) => quarantineRecords(client, records, { copyToDlq }));
const claim = (maxBytes: number, leaseMs = 60_000, upToId?: number) => claimPendingCopies(db.pool, { topic: TOPIC, maxBytes, maxRows: 100, leaseMs, upToId });
const offsets = (c: { copies: { offset: string }[] }) => c.copies.map((copy) => copy.offset);
const markSent = (...claims: { copies: { id: number }[] }[]) => markCopiesSent(db.pool, claims.flatMap((c) => c.copies.map((copy) => copy.id)));

describe('the DLQ outbox', () => {
  it('hands the waiting copies out in order, each to one relay, within the byte budget, and forgets them once sent', async () => {
    await quarantine([reject(0, 10 * KIB), reject(1, 10 * KIB), reject(2, 10 * KIB), reject(3, 300 * KIB), reject(4, 1)], true);
    await quarantine([reject(0, 5, 'file:backfill.ndjson')], false);
    await quarantine([reject(0, 5, 'other.events')], true); // another deployment's input on the same database
    expect((await pendingCopies(db.pool, TOPIC)).count).toBe(5);
    // Counted up to a cap (the relay's gauges, every 5 s), the oldest still read.
    await db.pool.query(`UPDATE quarantine SET quarantined_at = now() - interval '1 hour' WHERE source_topic = $1 AND source_offset = 0`, [TOPIC]);
    // The refused ones among the oldest the cap keeps, whatever the plan: not one past it.
    await db.pool.query(`UPDATE quarantine SET dlq_refused = 'test' WHERE source_topic = $1 AND source_offset IN (1, 4)`, [TOPIC]);
    const capped = await pendingCopies(db.pool, TOPIC, 3);
    expect(capped).toMatchObject({ count: 3, refused: 1 });
    expect(await pendingCopies(db.pool, TOPIC)).toMatchObject({ count: 5, refused: 2 });
    expect(capped.oldestSeconds).toBeGreaterThanOrEqual(3600);
    await db.pool.query(`UPDATE quarantine SET dlq_refused = NULL WHERE source_topic = $1`, [TOPIC]);
    await db.pool.query(`UPDATE quarantine SET quarantined_at = now() WHERE source_topic = $1`, [TOPIC]);

    // The first two fit 25 KiB; the third starts past it.
    const first = await claim(25 * KIB);
    expect(offsets(first)).toEqual(['0', '1']);
    expect(first.copies[0]).toMatchObject({ topic: TOPIC, partition: 0, reason: 'invalid_json', detail: 'reject 0', key: Buffer.from('hunt-1') });
    expect(first.copies[0]?.value?.length).toBe(10 * KIB);
    // Another member, meanwhile: the leased rows are not its; a row larger than the budget
    // goes alone rather than never.
    const second = await claim(25 * KIB);
    expect(offsets(second)).toEqual(['2']);
    const alone = await claim(25 * KIB);
    expect(offsets(alone)).toEqual(['3']);
    const third = await claim(25 * KIB);
    expect(offsets(third)).toEqual(['4']);
    expect(offsets(await claim(25 * KIB))).toEqual([]);

    // The first relay's send failed: its rows can be taken again at once.
    await releaseClaim(db.pool, first);
    const retried = await claim(25 * KIB);
    expect(offsets(retried)).toEqual(['0', '1']);

    await markSent(retried, second, alone);
    const left = await pendingCopies(db.pool, TOPIC);
    expect(left.count).toBe(1);
    // The one left has waited as long as its row says.
    await db.pool.query(`UPDATE quarantine SET quarantined_at = now() - interval '90 seconds' WHERE source_topic = $1 AND dlq_pending`, [TOPIC]);
    const aged = await pendingCopies(db.pool, TOPIC);
    expect(aged.oldestSeconds).toBeGreaterThanOrEqual(90);
    expect(aged.oldestSeconds).toBeLessThan(120);
    await markSent(third);
    expect(await pendingCopies(db.pool, TOPIC)).toEqual({ count: 0, refused: 0, oldestSeconds: 0 });
    expect((await pendingCopies(db.pool, 'other.events')).count).toBe(1);
  });

  it("lets another relay take a dead relay's rows once its lease ends, and a late release of the dead one's leaves them alone", async () => {
    await quarantine([reject(100, 10)], true);
    const dead = await claim(KIB);
    expect(offsets(dead)).toEqual(['100']);
    expect(offsets(await claim(KIB))).toEqual([]);
    // The lease ends (set in the row: a short lease and a sleep failed when one commit took longer).
    await db.pool.query(`UPDATE quarantine SET dlq_claimed_until = now() - interval '1 millisecond' WHERE source_topic = $1 AND dlq_pending`, [TOPIC]);
    const taken = await claim(KIB);
    expect(offsets(taken)).toEqual(['100']);
    await releaseClaim(db.pool, dead); // the first relay's send failed at last
    expect(offsets(await claim(KIB))).toEqual([]); // still the second's
    await markSent(taken);
  });

  it('keeps a redelivered reject once, with one copy; one a backfill quarantined first still gets its copy', async () => {
    await quarantine([reject(200, 10)], true);
    await markSent(await claim(KIB));
    await quarantine([reject(200, 10)], true);
    expect((await pendingCopies(db.pool, TOPIC)).count).toBe(0);

    // A backfill of the input topic quarantined it first, without a copy; then the hot path rejects it.
    await quarantine([reject(300, 10)], false);
    expect((await pendingCopies(db.pool, TOPIC)).count).toBe(0);
    await quarantine([reject(300, 10), reject(300, 10)], true); // twice in one batch, too
    expect((await pendingCopies(db.pool, TOPIC)).count).toBe(1);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM quarantine WHERE source_offset = 300`);
    expect(rows[0].n).toBe(1);
    await markSent(await claim(KIB));
  });

  it('gives a stopping relay only the copies waiting when it stopped', async () => {
    await quarantine([reject(400, 10), reject(401, 10)], true);
    const upTo = await newestPendingId(db.pool, TOPIC);
    await quarantine([reject(402, 10)], true); // another member's, after the stop began
    expect(offsets(await claim(KIB, 60_000, upTo))).toEqual(['400', '401']);
    expect(offsets(await claim(KIB, 60_000, upTo))).toEqual([]);
  });
});
