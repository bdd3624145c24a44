/**
 * A Kafka broker of the test's own with one SASL_SSL listener: the embedded stack's Kafka
 * 3.9.1 jars (infra/kafka.ts), a KRaft node with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512,
 * the server certificate of a test CA as a PEM keystore, and SCRAM users created by the
 * broker's own StorageTool (`format --add-scram`). Stopped and removed by `stop()`.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { KAFKA_VERSION } from '../../infra/kafka';
import { execFileAsync, isAlive, logTail, portOpen, stopPid, waitUntil } from '../../infra/process';
import { loadConfig } from '../../src/config';
import type { TestCa } from './test-ca';

export interface SaslUser {
  mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  username: string;
  password: string;
}

export interface SaslKafka {
  /** host:port of the SASL_SSL listener (advertised as 127.0.0.1; the certificate names it and localhost). */
  brokers: string;
  logFile: string;
  stop(): Promise<void>;
}

const INTER_BROKER = { username: 'broker', password: crypto.randomBytes(12).toString('hex') };

function jaasConfig(module: string, entries: Record<string, string>): string {
  const options = Object.entries(entries).map(([k, v]) => `${k}="${v}"`).join(' ');
  return `${module} required ${options};`;
}

export async function startSaslKafka(
  dir: string,
  ca: TestCa,
  users: SaslUser[],
  ports: { broker: number; controller: number },
  /** Also require a client certificate signed by the CA (`ssl.client.auth=required` on the listener). */
  requireClientCertificate = false,
): Promise<SaslKafka> {
  const config = loadConfig();
  const libs = path.join(config.stack.cacheDir, `kafka-${KAFKA_VERSION}`, 'libs');
  if (!fs.existsSync(libs)) throw new Error(`no Kafka jars in ${libs}: run \`hunt stack up\` once`);
  fs.mkdirSync(dir, { recursive: true });
  // Kafka reads its key and certificate chain from one PEM file.
  const keystore = path.join(dir, 'server-keystore.pem');
  fs.writeFileSync(keystore, fs.readFileSync(ca.server.key, 'utf8') + fs.readFileSync(ca.server.cert, 'utf8'));
  const plainUsers = Object.fromEntries(users.filter((u) => u.mechanism === 'plain').map((u) => [`user_${u.username}`, u.password]));
  const properties = [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${ports.controller}`,
    `listeners=SASL_SSL://127.0.0.1:${ports.broker},CONTROLLER://127.0.0.1:${ports.controller}`,
    `advertised.listeners=SASL_SSL://127.0.0.1:${ports.broker}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=SASL_SSL',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL',
    'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
    'sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512',
    `listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=${jaasConfig('org.apache.kafka.common.security.scram.ScramLoginModule', INTER_BROKER)}`,
    `listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=${jaasConfig('org.apache.kafka.common.security.scram.ScramLoginModule', {})}`,
    `listener.name.sasl_ssl.plain.sasl.jaas.config=${jaasConfig('org.apache.kafka.common.security.plain.PlainLoginModule', { ...INTER_BROKER, ...plainUsers })}`,
    'ssl.keystore.type=PEM',
    `ssl.keystore.location=${keystore}`,
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${ca.caFile}`,
    // The broker's own certificate serves as its client certificate for inter-broker traffic.
    // On a SASL_SSL listener only the listener-prefixed setting takes effect.
    ...(requireClientCertificate ? ['listener.name.sasl_ssl.ssl.client.auth=required'] : []),
    `log.dirs=${path.join(dir, 'data')}`,
    'num.partitions=4',
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'default.replication.factor=1',
    'group.initial.rebalance.delay.ms=0',
    'auto.create.topics.enable=true',
  ];
  const propertiesFile = path.join(dir, 'server.properties');
  fs.writeFileSync(propertiesFile, `${properties.join('\n')}\n`);
  const log4j = path.join(dir, 'log4j.properties');
  fs.writeFileSync(log4j, ['log4j.rootLogger=WARN, stdout', 'log4j.appender.stdout=org.apache.log4j.ConsoleAppender', 'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout', 'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n'].join('\n') + '\n');
  const jvm = ['-cp', path.join(libs, '*'), `-Dlog4j.configuration=file:${log4j}`, '-Xms256m', '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Djava.awt.headless=true'];

  // SCRAM credentials live in the cluster metadata: the storage tool writes them at format time.
  const scram = [INTER_BROKER, ...users.filter((u) => u.mechanism === 'scram-sha-512')].map((u) => `SCRAM-SHA-512=[name=${u.username},password=${u.password}]`);
  scram.push(...users.filter((u) => u.mechanism === 'scram-sha-256').map((u) => `SCRAM-SHA-256=[name=${u.username},password=${u.password}]`));
  await execFileAsync('java', [...jvm, 'kafka.tools.StorageTool', 'format', `--cluster-id=${crypto.randomBytes(16).toString('base64url')}`, '-c', propertiesFile, ...scram.flatMap((s) => ['--add-scram', s])], { maxBuffer: 16 * 1024 * 1024 });

  const logFile = path.join(dir, 'kafka.log');
  const out = fs.openSync(logFile, 'a');
  const child = spawn('java', [...jvm, 'kafka.Kafka', propertiesFile], { stdio: ['ignore', out, out], detached: true });
  fs.closeSync(out);
  const pid = child.pid as number;
  child.unref();
  const stop = async () => {
    if (isAlive(pid)) await stopPid(pid, 'SIGTERM', 15_000);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil('the SASL_SSL Kafka broker', () => portOpen(ports.broker), { timeoutMs: 90_000, pid, logFile });
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}${logTail(logFile)}`, { cause: err });
  }
  return { brokers: `127.0.0.1:${ports.broker}`, logFile, stop };
}
