/**
 * The batch bench's data file as a Kafka topic, so a backfill from Kafka reads the very
 * records the file backfill reads: each line one message, keyed by its hunt (as game clients
 * key them; a line without a readable huntId goes unkeyed), in file order.
 */
import type { Kafka } from 'kafkajs';
import { readChunk, type FileCursor } from '../../src/batch/backfill/ndjson-source';
import { produceBacklog } from './produce-backlog';

/** Lines of any length the broker takes: the file's too-long lines must stay too long. */
const MAX_LINE_BYTES = 512 * 1024;

export async function produceFileToTopic(kafka: Kafka, file: string, topic: string, records: number): Promise<{ sent: number; seconds: number }> {
  let cursor: FileCursor = { byteOffset: 0, line: 1 };
  let pending: Buffer[] = [];
  const nextLine = (): Buffer => {
    while (pending.length === 0) {
      const chunk = readChunk(file, cursor, 5000, MAX_LINE_BYTES);
      pending = chunk.records.map((r) => r.value).reverse();
      cursor = chunk.next;
      if (chunk.eof && pending.length === 0) throw new Error(`${file} holds fewer than ${records} records`);
    }
    return pending.pop()!;
  };
  // One send at a time: a retried send among several in flight could land after a later one,
  // and a hunt's records out of file order can score differently (first arrival wins).
  return produceBacklog(kafka, { topic, count: records, batch: 5000, inFlight: 1 }, () => {
    const value = nextLine();
    const hunt = /"huntId":"([^"\\]{1,200})"/.exec(value.subarray(0, 400).toString('latin1'))?.[1] ?? null;
    return { key: hunt, value };
  });
}
