/**
 * A backlog produced as fast as Kafka takes it: `count` messages to `topic` in sends of
 * `batch`, with up to `inFlight` sends outstanding. The caller makes each message (and
 * counts what it made); timing starts once the producer is connected.
 */
import { Partitioners, type Kafka, type Message } from 'kafkajs';

export interface ProduceBacklogOptions {
  topic: string;
  count: number;
  batch: number;
  inFlight: number;
}

export async function produceBacklog(kafka: Kafka, options: ProduceBacklogOptions, nextMessage: () => Message): Promise<{ sent: number; seconds: number }> {
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let sent = 0;
  const started = performance.now();
  const inFlight = new Set<Promise<unknown>>();
  try {
    while (sent < options.count) {
      const size = Math.min(options.batch, options.count - sent);
      const messages = Array.from({ length: size }, nextMessage);
      sent += size;
      const send: Promise<unknown> = producer.send({ topic: options.topic, acks: 1, messages }).finally(() => inFlight.delete(send));
      inFlight.add(send);
      if (inFlight.size >= options.inFlight) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  } finally {
    await producer.disconnect();
  }
  return { sent, seconds: (performance.now() - started) / 1000 };
}
