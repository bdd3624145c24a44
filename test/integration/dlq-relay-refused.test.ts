/**
 * The DLQ relay (src/ingest/dlq-relay.ts) with many copies the DLQ topic refuses for the
 * records themselves, on the real Postgres, through the real sender and a producer that
 * answers as a compacted DLQ does: INVALID_RECORD for a record without a key. Before, a claim
 * its byte limit stopped (8 copies of 1 MiB) was followed by the 1 s pause of an idle relay,
 * and a refused copy came back every 10 minutes however long it had been refused: a few
 * thousand of them filled every claim, and the keyed copies behind them never went.
 */
import type { Message, Producer, ProducerRecord } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { createDlqSender } from '../../src/ingest/dlq';
import { REFUSED_RETRY_MAX_MS, REFUSED_RETRY_MS, startDlqRelay } from '../../src/ingest/dlq-relay';
import { createIngestMetrics } from '../../src/ingest/metrics';
import { createLogger } from '../../src/log';
import { claimPendingCopies, pendingCopies } from '../../src/store/hot-path/dlq-outbox';
import { quarantineRecords, type RejectedRecord } from '../../src/store/hot-path/quarantine';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';
import { uniqueName, waitFor } from '../helpers/wait';

const db = useTestDatabase();
const MIB = 1024 * 1024;

interface Send {
  at: number;
  offsets: string[];
  refused: boolean;
}

/** A producer that refuses, as a compacted topic does, every send holding a record without a key, and takes the rest. */
function compactedTopicProducer() {
  const sends: Send[] = [];
  const offsetOf = (m: Message) => String(m.headers?.['source.offset']);
  const producer = {
    send: (record: ProducerRecord) => {
      const refused = record.messages.some((m) => m.key === null || m.key === undefined);
      sends.push({ at: Date.now(), offsets: record.messages.map(offsetOf), refused });
      if (!refused) return Promise.resolve([]);
      return Promise.reject(Object.assign(new Error('This record has failed the validation on broker and hence will be rejected (test)'), { type: 'INVALID_RECORD' }));
    },
  } as unknown as Producer;
  return { producer, sends };
}

/**
 * `pollMs` a minute: an idle relay looks again after a minute, not a second (nothing wakes
 * it), so a pass it does not follow at once shows as the test's timeout, not a slower clock.
 */
function startRelay(input: string, producer: Producer, pollMs?: number) {
  const quiet = createLogger({ logLevel: 'fatal' });
  return startDlqRelay({ pool: db.pool, sender: createDlqSender(producer, 'dlq.refusing', 16 * MIB, quiet), topic: input, metrics: createIngestMetrics(), logger: quiet, pollMs });
}

const reject = (input: string, offset: number, key: Buffer | null, value: Buffer): RejectedRecord => ({
  topic: input,
  partition: 0,
  offset: String(offset),
  key,
  value,
  reason: 'invalid_json',
  detail: `reject ${offset}`,
});

/** Minutes left of each waiting copy's lease, by source offset. */
async function leaseMinutes(input: string): Promise<Map<string, number>> {
  const { rows } = await db.pool.query<{ source_offset: string; minutes: number }>(
    `SELECT source_offset::text, extract(epoch FROM dlq_claimed_until - now())::float8 / 60 AS minutes
       FROM quarantine WHERE source_topic = $1 AND dlq_pending AND dlq_refused IS NOT NULL`,
    [input],
  );
  return new Map(rows.map((r) => [r.source_offset, r.minutes]));
}

describe('the DLQ relay with copies the topic refuses', () => {
  it('goes on at once after a claim its byte limit stopped, so a keyed copy behind many refused ones goes promptly', async () => {
    const input = uniqueName('refused-bytes.events');
    const KEYLESS = 48; // six claims of 8 copies of 1 MiB, each stopped by CLAIM_MAX_BYTES
    const rejects = Array.from({ length: KEYLESS }, (_, i) => reject(input, i, null, Buffer.alloc(MIB, 0x61 + (i % 26))));
    rejects.push(reject(input, KEYLESS, Buffer.from('hunt-1'), Buffer.from('not json')));
    await withTransaction(db.pool, (client) => quarantineRecords(client, rejects, { copyToDlq: true }));

    const { producer, sends } = compactedTopicProducer();
    const relay = startRelay(input, producer, 60_000);
    try {
      // Six claims stopped by their byte limit: were one not followed at once, the relay would
      // wait the minute of an idle one, and the keyed copy past this wait.
      await waitFor('the keyed copy to be sent', () => sends.find((s) => !s.refused && s.offsets.includes(String(KEYLESS))), { timeoutMs: 30_000, intervalMs: 20 });
      expect(sends.filter((s) => !s.refused).flatMap((s) => s.offsets)).toEqual([String(KEYLESS)]);
    } finally {
      await relay.stop(5_000);
    }
    // Every keyless copy waits, set aside with the broker's reason; quarantine keeps it.
    expect(await pendingCopies(db.pool, input)).toMatchObject({ count: KEYLESS, refused: KEYLESS });
    const { rows } = await db.pool.query<{ dlq_refused: string }>('SELECT DISTINCT dlq_refused FROM quarantine WHERE source_topic = $1 AND dlq_pending', [input]);
    expect(rows).toEqual([{ dlq_refused: expect.stringMatching(/^INVALID_RECORD: /) }]);
  });

  it('counts a claim its byte limit stopped as full, as one its row limit stopped: the relay goes on at once after either', async () => {
    const input = uniqueName('claim-full.events');
    await withTransaction(db.pool, (client) =>
      quarantineRecords(client, Array.from({ length: 10 }, (_, i) => reject(input, i, null, Buffer.alloc(MIB, 0x61))), { copyToDlq: true }),
    );
    const claim = (maxRows: number, maxBytes: number) => claimPendingCopies(db.pool, { topic: input, maxRows, maxBytes, leaseMs: 60_000 });
    // Before, only a claim of maxRows rows counted as full: this one (3 of 10 free) did not,
    // and the relay paused a second after each, 3 copies of 1 MiB a second.
    const byBytes = await claim(1000, 3 * MIB);
    expect(byBytes.copies).toHaveLength(3);
    expect(byBytes.full).toBe(true);
    const byRows = await claim(2, 100 * MIB);
    expect(byRows).toMatchObject({ copies: [expect.anything(), expect.anything()], full: true });
    const rest = await claim(1000, 100 * MIB); // the last 5, nothing left behind them
    expect(rest.copies).toHaveLength(5);
    expect(rest.full).toBe(false);
  });

  it('sets a copy refused again and again aside for longer each time, up to the cap', async () => {
    expect(REFUSED_RETRY_MS).toBe(10 * 60_000);
    expect(REFUSED_RETRY_MAX_MS).toBe(6 * 3_600_000);
    const input = uniqueName('refused-ages.events');
    await withTransaction(db.pool, (client) => quarantineRecords(client, [0, 1, 2].map((offset) => reject(input, offset, null, Buffer.from(`not json ${offset}`))), { copyToDlq: true }));
    // Their copies have waited since: 0 just now, 1 for 2 hours, 2 for 3 days.
    await db.pool.query(
      `UPDATE quarantine SET quarantined_at = now() - CASE source_offset WHEN 1 THEN interval '2 hours' WHEN 2 THEN interval '3 days' ELSE interval '0' END
        WHERE source_topic = $1`,
      [input],
    );

    const { producer } = compactedTopicProducer();
    const relay = startRelay(input, producer);
    try {
      await waitFor('the three copies to be set aside', async () => (await pendingCopies(db.pool, input)).refused === 3, { timeoutMs: 30_000, intervalMs: 50 });
      const first = await leaseMinutes(input);
      // A fresh refusal: the 10 minutes; one waiting 2 hours: half of that; 3 days: the cap, 6 hours.
      expect(first.get('0')).toBeGreaterThan(9.5);
      expect(first.get('0')).toBeLessThan(10.5);
      expect(first.get('1')).toBeGreaterThan(59.5);
      expect(first.get('1')).toBeLessThan(60.5);
      expect(first.get('2')).toBeGreaterThan(359.5);
      expect(first.get('2')).toBeLessThan(360.5);

      // An hour on, the first copy's wait is over and it is refused again: set aside for 30 minutes.
      await db.pool.query(
        `UPDATE quarantine SET quarantined_at = quarantined_at - interval '1 hour', dlq_claimed_until = now() WHERE source_topic = $1 AND source_offset = 0`,
        [input],
      );
      const again = await waitFor('the first copy to be refused again', async () => {
        const minutes = (await leaseMinutes(input)).get('0');
        return minutes !== undefined && minutes > 15 ? minutes : undefined;
      }, { timeoutMs: 30_000, intervalMs: 50 });
      expect(again).toBeGreaterThan(29.5);
      expect(again).toBeLessThan(30.5);
    } finally {
      await relay.stop(5_000);
    }
    expect(await pendingCopies(db.pool, input)).toMatchObject({ count: 3, refused: 3 });
  });
});
