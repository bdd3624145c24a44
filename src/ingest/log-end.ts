/**
 * Where each partition's log ends, records of open transactions included. The consumer reads
 * committed records only, and the broker's answer to "where does it end" is then the last
 * stable offset: a producer that begins a transaction and never ends it holds every record
 * after it back (until the broker aborts it, after transaction.max.timeout.ms, 15 minutes by
 * default), while the lag and the stall checks, which compare against that same offset, see
 * a partition caught up. The monitor compares the two (health.ts).
 */
import type { Admin, AdminConfig, Kafka } from 'kafkajs';

export interface LogEndReader {
  read(topic: string): Promise<Map<number, bigint>>;
  close(): Promise<void>;
}

export function logEndReader(kafka: Kafka): LogEndReader {
  // readUncommitted: patches/kafkajs+2.2.4.patch (kafkajs's admin always asked for the committed end).
  const admin: Admin = kafka.admin({ readUncommitted: true } as AdminConfig);
  let connected: Promise<void> | undefined;
  return {
    async read(topic) {
      connected ??= admin.connect().catch((err: unknown) => {
        connected = undefined; // the next tick tries again
        throw err;
      });
      await connected;
      const offsets = await admin.fetchTopicOffsets(topic);
      return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
    },
    async close() {
      if (connected) await admin.disconnect().catch(() => undefined);
    },
  };
}
