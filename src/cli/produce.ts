/** `hunt produce`: demo and load traffic for the input topic. */
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config';
import { MAX_PRODUCE_RATE, produceTraffic } from '../demo/produce';
import { TrafficGenerator } from '../demo/traffic';
import { createKafka, withKafkaHint } from '../pipeline/kafka-client';
import { ensureTopics } from '../ingest/topics';
import { createLogger } from '../log';
import { STOP_DEADLINE_MS, untilSignal } from './stop';

const positive = (name: string) => (raw: string) => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got '${raw}'`);
  return value;
};
/** `--rate` of `hunt produce` and `hunt start`: refused past what one process can build and send. */
export const eventsPerSecond = (raw: string) => {
  const value = positive('--rate')(raw);
  if (value > MAX_PRODUCE_RATE) throw new InvalidArgumentError(`--rate must be at most ${MAX_PRODUCE_RATE.toLocaleString('en-US')} events/s, got '${raw}'`);
  return value;
};
const fraction = (name: string) => (raw: string) => {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new InvalidArgumentError(`${name} must be between 0 and 1, got '${raw}'`);
  return value;
};

export function registerProduceCommand(program: Command): void {
  program
    .command('produce')
    .description('send realistic game traffic to the input topic')
    .option('--rate <n>', `events per second (at most ${MAX_PRODUCE_RATE})`, eventsPerSecond, 200)
    .option('--duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)', positive('--duration'))
    .option('--count <n>', 'stop after this many records', positive('--count'))
    .option('--hunts <n>', 'number of hunts', positive('--hunts'), 3)
    .option('--players <n>', 'players per hunt', positive('--players'), 50)
    .option('--duplicates <fraction>', 'fraction of records that resend an earlier eventId', fraction('--duplicates'), 0)
    .option('--invalid <fraction>', 'fraction of invalid records (each reject reason)', fraction('--invalid'), 0)
    .option('--late-claims <fraction>', 'fraction of treasure claims sent 30 s after they happened', fraction('--late-claims'), 0)
    .action(async (opts: { rate: number; duration?: number; count?: number; hunts: number; players: number; duplicates: number; invalid: number; lateClaims: number }) => {
      const config = loadConfig();
      const logger = createLogger(config, 'produce');
      const kafka = createKafka(config, logger);
      // The DLQ is the consumer's to create: it sizes it to the input topic's largest record.
      await ensureTopics(kafka, [config.kafka.topics.events]).catch((err: unknown) => {
        throw withKafkaHint(err, config);
      });
      const generator = new TrafficGenerator({
        hunts: Math.floor(opts.hunts),
        playersPerHunt: Math.floor(opts.players),
        duplicateFraction: opts.duplicates,
        invalidFraction: opts.invalid,
        lateClaimFraction: opts.lateClaims,
      });
      const abort = new AbortController();
      void untilSignal(logger).then(() => {
        abort.abort();
        // A send under way to a broker that does not answer waits out kafkajs's retries (minutes).
        setTimeout(() => {
          logger.error({ deadlineMs: STOP_DEADLINE_MS }, 'the send in flight did not end in time (Kafka not answering); exiting');
          process.exit(1);
        }, STOP_DEADLINE_MS).unref();
      });
      const sent = await produceTraffic(kafka, generator, {
        topic: config.kafka.topics.events,
        rate: opts.rate,
        durationMs: opts.duration === undefined ? undefined : opts.duration * 1000,
        count: opts.count === undefined ? undefined : Math.floor(opts.count),
        signal: abort.signal,
      });
      console.log(`sent ${sent} records to ${config.kafka.topics.events}`);
      process.exit(0);
    });
}
