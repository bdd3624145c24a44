/**
 * Records sent by the Java client with a compression codec, as game clients on the JVM send
 * them: Kafka's own console producer (kafka.tools.ConsoleProducer), run on the embedded
 * broker's cached jars with the Java runtime the broker runs on.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { kafkaLibsDir } from '../../infra/kafka';
import { loadConfig } from '../../src/config';

const run = promisify(execFile);

export type JavaCodec = 'gzip' | 'snappy' | 'lz4' | 'zstd';

/** Sends `records` (keys and values without tabs or newlines) to `topic`, compressed with `codec`, in as few batches as the producer makes. */
export async function sendWithJavaClient(topic: string, codec: JavaCodec, records: { key: string; value: string }[]): Promise<void> {
  const config = loadConfig();
  const args = [
    '-cp', path.join(kafkaLibsDir(config), '*'), 'kafka.tools.ConsoleProducer',
    '--bootstrap-server', config.kafka.brokers.join(','),
    '--topic', topic,
    '--compression-codec', codec,
    '--batch-size', '100000',
    '--producer-property', 'batch.size=1000000',
    '--property', 'parse.key=true',
    '--property', 'key.separator=\t',
  ];
  const child = run('java', args, { maxBuffer: 16 * 1024 * 1024 });
  child.child.stdin?.end(records.map((r) => `${r.key}\t${r.value}\n`).join(''));
  await child;
}
