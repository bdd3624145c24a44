/**
 * Steady game traffic for the soak: the demo generator's mix (joins, clues, hints, claims,
 * leaves; duplicates, some with another payload; late treasure claims) at a fixed rate, with
 * hostile records from the test corpus mixed in. Every hostile record's expected reason is
 * kept by the hash of its bytes, so the final check knows what each record in the topic
 * had to become, even if a send was retried across a broker restart and landed twice.
 */
import crypto from 'node:crypto';
import { Partitioners, type Kafka, type Message } from 'kafkajs';
import { seededRandom, TrafficGenerator } from '../../src/demo/traffic';
import type { HuntEvent } from '../../src/events/schema';
import type { RejectReason } from '../../src/events/validate';
import { chunksWithin } from '../../src/ingest/dlq';
import { hostileCorpus, type HostileRecord } from '../../test/helpers/hostile';

export const valueHash = (value: Buffer | null) => (value === null ? 'null' : crypto.createHash('sha1').update(value).digest('base64'));

export interface TrafficStats {
  sent: number;
  hostile: number;
  sendErrors: number;
}

export class SoakTraffic {
  readonly expectedRejects = new Map<string, RejectReason>();
  /** Valid events kept for the backfill file's exact copies. */
  readonly sample: HuntEvent[] = [];
  readonly stats: TrafficStats = { sent: 0, hostile: 0, sendErrors: 0 };
  private readonly generator: TrafficGenerator;
  private hostile: HostileRecord[] = [];
  private corpusSeed = 1;
  private stopped = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly options: { rate: number; hostileFraction: number; seed: number; onError: (err: Error) => void },
  ) {
    this.generator = new TrafficGenerator({
      hunts: 40,
      playersPerHunt: 200,
      duplicateFraction: 0.02,
      lateClaimFraction: 0.02,
      invalidFraction: 0,
      random: seededRandom(options.seed),
    });
  }

  private nextHostile(): HostileRecord {
    if (this.hostile.length === 0) {
      // A fresh corpus now and then: its future timestamps must stay in the future.
      this.hostile = hostileCorpus({ hostile: 1000, validEvery: 1_000_000, hunts: 8, burst: 10, seed: this.corpusSeed++ }).records.reverse();
    }
    return this.hostile.pop() as HostileRecord;
  }

  private nextMessage(): Message {
    if (Math.random() < this.options.hostileFraction) {
      const record = this.nextHostile();
      this.stats.hostile++;
      if (record.expect !== 'accepted') this.expectedRejects.set(valueHash(record.value), record.expect);
      return { key: record.key, value: record.value };
    }
    const record = this.generator.next();
    if (record.event && this.sample.length < 20_000) this.sample.push(record.event);
    return { key: record.key, value: record.value };
  }

  /** Sends at the configured rate until stop(); a failed send is retried (it may land twice). */
  async run(): Promise<void> {
    const producer = this.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 10, maxRetryTime: 5000 } });
    await producer.connect();
    const started = Date.now();
    try {
      while (!this.stopped) {
        const due = Math.floor(((Date.now() - started) / 1000) * this.options.rate);
        const count = Math.min(5000, due - this.stats.sent);
        if (count > 0) {
          const messages = Array.from({ length: count }, () => this.nextMessage());
          for (const chunk of chunksWithin(messages, 900_000)) await this.sendUntilAcked(producer, chunk);
          this.stats.sent += count;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await producer.disconnect().catch(() => undefined);
    }
  }

  private async sendUntilAcked(producer: ReturnType<Kafka['producer']>, messages: Message[]): Promise<void> {
    for (;;) {
      try {
        await producer.send({ topic: this.topic, acks: -1, messages });
        return;
      } catch (err) {
        this.stats.sendErrors++;
        this.options.onError(err as Error);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  stop(): void {
    this.stopped = true;
  }
}
