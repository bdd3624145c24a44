/**
 * kafkajs 2.2.4 drops the records of aborted transactions with a list the broker sends per
 * fetch, which the broker orders by where each transaction ended (its abort marker), while
 * kafkajs read it as if ordered by where each started, and opened at most one transaction per
 * record. Records of aborted transactions then reached eachBatch as if committed:
 * test/integration/ingest-transactions.test.ts shows it on the real broker. patches/ carries
 * the fix (sorted by first offset, all transactions started by a record opened); these cases
 * check kafkajs's own Batch, as installed, with the patch applied.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

interface RawRecord {
  offset: string;
  key: Buffer;
  value: Buffer | null;
  isControlRecord: boolean;
  batchContext: { producerId: string; inTransaction: boolean };
}
interface AbortedTransaction {
  producerId: string;
  firstOffset: string;
}
type BatchClass = new (
  topic: string,
  fetchedOffset: string,
  partitionData: { partition: number; highWatermark: string; abortedTransactions: AbortedTransaction[]; messages: RawRecord[] },
) => { messages: RawRecord[] };

const Batch = createRequire(import.meta.url)('kafkajs/src/consumer/batch.js') as BatchClass;

const ABORT_KEY = Buffer.from([0, 0, 0, 0]);
const record = (offset: number, producerId: string, inTransaction = true): RawRecord => ({
  offset: String(offset), key: Buffer.from('k'), value: Buffer.from(`${producerId}${offset}`), isControlRecord: false, batchContext: { producerId, inTransaction },
});
const abortMarker = (offset: number, producerId: string): RawRecord => ({
  offset: String(offset), key: ABORT_KEY, value: null, isControlRecord: true, batchContext: { producerId, inTransaction: true },
});

function handedOver(fetchedOffset: number, messages: RawRecord[], abortedTransactions: AbortedTransaction[]): string[] {
  const highWatermark = String(Number(messages.at(-1)?.offset ?? 0) + 1);
  return new Batch('t', String(fetchedOffset), { partition: 0, highWatermark, abortedTransactions, messages }).messages.map((m) => m.offset);
}

describe('kafkajs hands over no record of an aborted transaction', () => {
  it('when two aborted transactions nest and the broker lists the inner one first', () => {
    // Y aborted over 0-3 with its marker at 5; H aborted over 2-3 with its marker at 4; C commits 1.
    const log = [record(0, 'Y'), record(1, 'C', false), record(2, 'H'), record(3, 'Y'), abortMarker(4, 'H'), abortMarker(5, 'Y'), record(6, 'C', false)];
    const listedByMarker = [{ producerId: 'H', firstOffset: '2' }, { producerId: 'Y', firstOffset: '0' }];
    expect(handedOver(0, log, listedByMarker)).toEqual(['1', '6']);
  });

  it('when a fetch starts past where several aborted transactions began', () => {
    // The fetch's first record is B's: both A and B have to be open by then, not A alone.
    const log = [record(0, 'A'), record(1, 'B'), record(2, 'B'), record(3, 'A'), abortMarker(4, 'A'), abortMarker(5, 'B'), record(6, 'C', false)];
    const aborted = [{ producerId: 'A', firstOffset: '0' }, { producerId: 'B', firstOffset: '1' }];
    expect(handedOver(2, log, aborted)).toEqual(['6']);
  });

  it('and every record of a producer whose earlier transaction aborted but whose next one committed', () => {
    const log = [record(0, 'P'), abortMarker(1, 'P'), record(2, 'P'), { ...abortMarker(3, 'P'), key: Buffer.from([0, 0, 0, 1]) }];
    expect(handedOver(0, log, [{ producerId: 'P', firstOffset: '0' }])).toEqual(['2']);
  });
});
