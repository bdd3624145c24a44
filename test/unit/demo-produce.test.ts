/**
 * The demo producer when Kafka fails its sends (produce.ts): `hunt start`'s producer rides an
 * outage out, dropping what it could not send rather than catching the outage up later in
 * one burst; without a listener (`hunt produce`), the first failure ends the run. At a high
 * rate it builds a bounded number of records at a time, whatever is due. The
 * producer is a stand-in here: what is tested is the loop, not Kafka (demo-produce.test.ts in
 * integration sends to the real broker).
 */
import type { Kafka } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { produceTraffic } from '../../src/demo/produce';
import { seededRandom, TrafficGenerator } from '../../src/demo/traffic';

/** A Kafka whose producer fails every send while `failing()` says so, counting the records it took. */
function flakyKafka(failing: () => boolean) {
  const taken = { records: 0, sends: 0 };
  const kafka = {
    producer: () => ({
      connect: async () => undefined,
      disconnect: async () => undefined,
      send: async ({ messages }: { messages: unknown[] }) => {
        taken.sends++;
        if (failing()) throw new Error('KafkaJSNumberOfRetriesExceeded: the broker is away');
        taken.records += messages.length;
      },
    }),
  } as unknown as Kafka;
  return { kafka, taken };
}

const generator = () => new TrafficGenerator({ hunts: 2, playersPerHunt: 5, random: seededRandom(3) });

describe('the demo producer in a Kafka outage', () => {
  it('goes on after failed sends, reports them, and does not catch the outage up', async () => {
    const started = Date.now();
    const { kafka, taken } = flakyKafka(() => Date.now() - started < 400);
    const errors: unknown[] = [];
    const sent = await produceTraffic(kafka, generator(), { topic: 't', rate: 1000, durationMs: 1500, onSendError: (err) => errors.push(err) });
    expect(errors.length).toBeGreaterThan(0);
    expect(sent).toBe(taken.records);
    expect(sent).toBeGreaterThan(0);
    // About 1.5 s at 1,000/s less the outage and the second it waits after a failure (about
    // 500); catching them up sent nearly the whole 1,500.
    expect(sent).toBeLessThan(1000);
  });

  it('without a listener, ends the run with the first failure', async () => {
    const { kafka } = flakyKafka(() => true);
    await expect(produceTraffic(kafka, generator(), { topic: 't', rate: 1000, durationMs: 1000 })).rejects.toThrow(/the broker is away/);
  });
});

describe('the demo producer at a high rate', () => {
  it('builds at most two ticks\' worth of records at once, however far behind a slow send left it', async () => {
    // Counts the records built since the last send: one tick's, as a tick builds them all first.
    let builtSinceSend = 0;
    const built: number[] = [];
    const generator = { next: () => (builtSinceSend++, { key: 'k', value: Buffer.from('v'), kind: 'event' }) } as unknown as TrafficGenerator;
    let sends = 0;
    const kafka = {
      producer: () => ({
        connect: async () => undefined,
        disconnect: async () => undefined,
        send: async () => {
          if (builtSinceSend > 0) built.push(builtSinceSend);
          builtSinceSend = 0;
          // The first send is slow: 200 ms at 1,000,000/s leave 200,000 records due.
          if (sends++ === 0) await new Promise((resolve) => setTimeout(resolve, 200));
        },
      }),
    } as unknown as Kafka;
    const sent = await produceTraffic(kafka, generator, { topic: 't', rate: 1_000_000, count: 60_000 });
    expect(sent).toBe(60_000);
    expect(Math.max(...built)).toBe(20_000);
  });

  it('refuses a rate past MAX_PRODUCE_RATE before connecting', async () => {
    const { kafka, taken } = flakyKafka(() => false);
    await expect(produceTraffic(kafka, generator(), { topic: 't', rate: 1e8, count: 1 })).rejects.toThrow(/rate must be more than 0 and at most 1000000 events\/s, got 100000000/);
    expect(taken.sends).toBe(0);
  });
});
