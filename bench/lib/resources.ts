/**
 * Everything a benchmark run creates on the shared stack (databases, topics, consumer
 * groups) carries the run's id and is recorded here, so the dev data is never touched and
 * `dispose` can drop exactly what this run made, even after a failure or Ctrl-C.
 */
import crypto from 'node:crypto';
import type { Kafka } from 'kafkajs';
import pg from 'pg';
import { migrate } from '../../src/store/migrate';

export class BenchResources {
  readonly runId = `${Date.now().toString(36)}${crypto.randomBytes(2).toString('hex')}`;
  private readonly databases: string[] = [];
  private readonly topics: string[] = [];
  private readonly groups: string[] = [];

  constructor(
    private readonly databaseUrl: string,
    private readonly kafka: Kafka,
  ) {}

  topicName(label: string): string {
    return `bench.ingest.${this.runId}.${label}`;
  }

  groupId(label: string): string {
    const id = `bench-${this.runId}-${label}`;
    this.groups.push(id);
    return id;
  }

  /** A group some other client made for this run (Kafka Connect names its own), dropped with the rest. */
  trackGroup(id: string): void {
    this.groups.push(id);
  }

  /** A fresh, migrated database; returns its URL. */
  async createDatabase(label: string): Promise<string> {
    const name = `bench_${this.runId}_${label}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
    await withAdmin(this.databaseUrl, (admin) => admin.query(`CREATE DATABASE ${name}`));
    this.databases.push(name);
    const url = databaseUrlFor(this.databaseUrl, name);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await migrate(client);
    } finally {
      await client.end();
    }
    return url;
  }

  async createTopic(label: string, partitions: number): Promise<string> {
    const topic = this.topicName(label);
    // The ingest service creates `<topic>.dlq` itself; list it so it is deleted too.
    this.topics.push(topic, `${topic}.dlq`);
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
    return topic;
  }

  /** Drops every database, topic and group this run created; reports what it could not. */
  async dispose(): Promise<string[]> {
    const problems: string[] = [];
    for (const name of this.databases.splice(0)) {
      await withAdmin(this.databaseUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch((err: Error) =>
        problems.push(`drop database ${name}: ${err.message}`),
      );
    }
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const topics = this.topics.splice(0).filter((t) => existing.has(t));
      if (topics.length > 0) await admin.deleteTopics({ topics }).catch((err: Error) => problems.push(`delete topics: ${err.message}`));
      const groups = this.groups.splice(0);
      if (groups.length > 0) {
        // Groups that never committed to Kafka do not exist; only real failures matter.
        const results = await admin.deleteGroups(groups).catch(() => []);
        for (const r of results) {
          if (r.errorCode && r.errorCode !== 0 && r.error?.type !== 'GROUP_ID_NOT_FOUND') problems.push(`delete group ${r.groupId}: ${r.error?.type}`);
        }
      }
    } finally {
      await admin.disconnect();
    }
    return problems;
  }
}

export function databaseUrlFor(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Runs `fn` with a client on the server's `postgres` database (to create or drop databases). */
export async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: databaseUrlFor(url, 'postgres') });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}

/** Records in a topic (end minus start offset), in all and per partition (index: partition). */
export async function topicEndOffsets(kafka: Kafka, topic: string): Promise<{ total: number; perPartition: number[] }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    const perPartition = offsets.sort((a, b) => a.partition - b.partition).map((o) => Number(o.high) - Number(o.low));
    return { total: perPartition.reduce((a, b) => a + b, 0), perPartition };
  } finally {
    await admin.disconnect();
  }
}

export { freePort } from '../../infra/process';
