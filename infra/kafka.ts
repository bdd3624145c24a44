/**
 * Embedded Kafka 3.9.1: one KRaft node acting as broker and controller, jars fetched from
 * Maven Central into the cache folder, data and logs under the state folder.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import type { KafkaSecurity } from '../src/config-security';
import { explainKafkaError } from '../src/connection-hints';
import { kafkaSecurityOptions } from '../src/pipeline/kafka-client';
import { projectRoot, type Config } from '../src/config';
import { assertPortsFree, execFileAsync, fetchWithRetries, onPath, runningPid, servicePaths, startDetached, stopPid, waitUntil } from './process';
import { MissingToolError, type ServiceStatus, type StackService } from './service';

export const KAFKA_VERSION = '3.9.1';

/** Where the embedded broker's jars are cached (the tests' Java producer uses its client jars too). */
export function kafkaLibsDir(config: Config): string {
  return path.join(config.stack.cacheDir, `kafka-${KAFKA_VERSION}`, 'libs');
}

export class EmbeddedKafka implements StackService {
  readonly name = 'kafka';
  private readonly paths;
  readonly logFile;

  constructor(private readonly config: Config) {
    this.paths = servicePaths(config.stack.stateDir, 'kafka');
    this.logFile = this.paths.logFile;
  }

  private get address(): string {
    return `127.0.0.1:${this.config.stack.kafka.port}`;
  }

  private get libsDir(): string {
    return kafkaLibsDir(this.config);
  }

  async up(): Promise<ServiceStatus> {
    let pid = runningPid(this.paths.pidFile);
    if (pid === undefined) {
      const { port, controllerPort } = this.config.stack.kafka;
      await assertPortsFree(
        'Kafka',
        [
          { port, variable: 'HUNT_KAFKA_PORT' },
          { port: controllerPort, variable: 'HUNT_KAFKA_CONTROLLER_PORT' },
        ],
        'set KAFKA_BROKERS to use that broker',
      );
      const java = onPath('java');
      if (!java) {
        throw new MissingToolError('Java (17+)', 'apt-get install openjdk-17-jre-headless', 'set KAFKA_BROKERS to an existing Kafka');
      }
      await this.fetchJars();
      const propertiesFile = this.writeConfigFiles();
      await this.formatStorageIfNeeded(java, propertiesFile);
      const heap = this.config.stack.kafka.heap;
      pid = startDetached({
        command: java,
        args: [...this.jvmArgs(), `-Xms${heap}`, `-Xmx${heap}`, 'kafka.Kafka', propertiesFile],
        paths: this.paths,
      });
    }
    await waitUntil('Kafka', () => brokerAnswers([this.address]), {
      timeoutMs: this.config.stack.timeoutMs,
      pid,
      logFile: this.logFile,
    });
    return this.status();
  }

  async down(): Promise<ServiceStatus> {
    const pid = runningPid(this.paths.pidFile);
    if (pid !== undefined) await stopPid(pid, 'SIGTERM');
    fs.rmSync(this.paths.pidFile, { force: true });
    return this.status();
  }

  async status(): Promise<ServiceStatus> {
    const pid = runningPid(this.paths.pidFile);
    const base = { name: this.name, mode: 'embedded' as const, address: this.address, pid, version: `Kafka ${KAFKA_VERSION} (KRaft)` };
    if (pid === undefined) return { ...base, state: 'down' };
    const up = await brokerAnswers([this.address]).catch(() => false);
    return { ...base, state: up ? 'up' : 'down' };
  }

  private jvmArgs(): string[] {
    return [
      '-cp', path.join(this.libsDir, '*'),
      `-Dlog4j.configuration=file:${path.join(this.paths.dir, 'log4j.properties')}`,
      `-Dkafka.logs.dir=${this.paths.dir}`,
      '-XX:+UseG1GC',
      '-Djava.awt.headless=true',
    ];
  }

  /** Fetches the broker's jars once; a half-done fetch never looks finished. */
  private async fetchJars(): Promise<void> {
    if (fs.existsSync(path.join(this.libsDir, `kafka_2.13-${KAFKA_VERSION}.jar`))) return;
    const mvn = onPath('mvn');
    if (!mvn) {
      throw new MissingToolError('Maven (to fetch Kafka from Maven Central)', 'apt-get install maven', 'set KAFKA_BROKERS to an existing Kafka');
    }
    const staging = `${this.libsDir}.partial`;
    await fetchWithRetries(
      "fetching Kafka's jars from Maven Central",
      mvn,
      // -C: a jar whose checksum does not match fails the try (and is fetched again), where
      // Maven's default only warns, which -q hides, and keeps the jar.
      ['-q', '-B', '-C', '-f', path.join(projectRoot, 'infra/kafka/pom.xml'), 'dependency:copy-dependencies', `-DoutputDirectory=${staging}`, '-DincludeScope=runtime'],
      { timeoutMs: 10 * 60_000, beforeEachAttempt: () => fs.rmSync(staging, { recursive: true, force: true }) },
    );
    fs.rmSync(this.libsDir, { recursive: true, force: true });
    fs.renameSync(staging, this.libsDir);
  }

  private writeConfigFiles(): string {
    const { port, controllerPort } = this.config.stack.kafka;
    fs.mkdirSync(this.paths.dir, { recursive: true });
    const properties = [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      `log.dirs=${path.join(this.paths.dir, 'data')}`,
      'num.partitions=4',
      // A single node can only hold one replica of the internal topics.
      'offsets.topic.replication.factor=1',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'default.replication.factor=1',
      // Tests and the demo join groups often; waiting 3 s for more members only slows them.
      'group.initial.rebalance.delay.ms=0',
      'auto.create.topics.enable=true',
      'log.retention.hours=168',
      'message.max.bytes=1048588',
    ].join('\n');
    const propertiesFile = path.join(this.paths.dir, 'server.properties');
    fs.writeFileSync(propertiesFile, `${properties}\n`);
    fs.writeFileSync(
      path.join(this.paths.dir, 'log4j.properties'),
      [
        'log4j.rootLogger=WARN, stdout',
        'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
        'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
        'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
        'log4j.logger.kafka.server.KafkaServer=INFO',
        'log4j.logger.kafka.server.KafkaRaftServer=INFO',
      ].join('\n') + '\n',
    );
    return propertiesFile;
  }

  private async formatStorageIfNeeded(java: string, propertiesFile: string): Promise<void> {
    if (fs.existsSync(path.join(this.paths.dir, 'data', 'meta.properties'))) return;
    // A Kafka cluster id is 16 random bytes in URL-safe base64 without padding. One in 64
    // starts with '-', which given as `-t <id>` the tool's parser takes for an option and
    // refuses ("expected one argument"): the id goes in the same argument as its name.
    const clusterId = crypto.randomBytes(16).toString('base64url');
    await execFileAsync(java, [...this.jvmArgs(), 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', propertiesFile, '-g'], {
      maxBuffer: 16 * 1024 * 1024,
    });
  }
}

/** A Kafka given by KAFKA_BROKERS: checked, never started or stopped. */
export class ExternalKafka implements StackService {
  readonly name = 'kafka';
  constructor(
    private readonly brokers: string[],
    private readonly security: KafkaSecurity,
  ) {}

  up(): Promise<ServiceStatus> {
    return this.status();
  }

  down(): Promise<ServiceStatus> {
    return this.status();
  }

  async status(): Promise<ServiceStatus> {
    const base = { name: this.name, mode: 'external' as const, address: this.brokers.join(',') };
    try {
      await brokerAnswers(this.brokers, this.security);
      return { ...base, state: 'up' };
    } catch (err) {
      const hint = explainKafkaError(err, this.security);
      return { ...base, state: 'down', error: hint ? `${hint} (${(err as Error).message})` : (err as Error).message };
    }
  }
}

/** True when the cluster answers a metadata request with at least one broker. */
async function brokerAnswers(brokers: string[], security: KafkaSecurity = {}): Promise<boolean> {
  // Not createKafka: this check must stay quiet (no logger) and give up after one try.
  const kafka = new Kafka({
    clientId: 'hunt-stack-health',
    brokers,
    ...kafkaSecurityOptions(security),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2000,
    retry: { retries: 0 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
