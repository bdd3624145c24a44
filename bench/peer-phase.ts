/**
 * The ingest benchmark's industry peer, measured in the same run as ours: Kafka Connect with
 * the Debezium JDBC sink (bench/peer/), on the same generated events wrapped in Connect's
 * embedded-schema JSON, upserting raw rows by eventId with its best writer (UNNEST). Its rate
 * is comparable to ours; what it does per event is far less (no validation, no scoring, no
 * exactly-once offsets in the same transaction).
 */
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import type { CpuGroups } from './lib/procfs';
import type { BenchResources } from './lib/resources';
import type { ConnectEventsResult } from './peer/connect-events';
import { produceConnectEvents, runConnectPeer, type ConnectPeerResult } from './peer/connect-peer';

export interface PeerPhaseResult {
  preload: ConnectEventsResult;
  drain: ConnectPeerResult;
  tasks: number;
  unnest: boolean;
}

export async function measurePeer(
  kafka: Kafka,
  resources: BenchResources,
  options: { events: number; hunts: number; players: number; duplicates: number; seed: number; brokers: string[]; rawDir: string; tasks: number; cpuGroups: CpuGroups; postmaster?: number },
): Promise<PeerPhaseResult> {
  const topic = await resources.createTopic('peer', 4);
  const preload = await produceConnectEvents(kafka, {
    topic,
    events: options.events,
    hunts: options.hunts,
    playersPerHunt: options.players,
    duplicateFraction: options.duplicates,
    invalidFraction: 0, // Connect has no validation: an invalid record would stop the task
    seed: options.seed,
  });
  const drain = await runConnectPeer({
    brokers: options.brokers.join(','),
    topic,
    databaseUrl: await resources.createDatabase('peer'),
    expectedRecords: preload.distinctEventIds,
    logDir: path.join(options.rawDir, 'peer'),
    unnest: true,
    mode: 'upsert',
    name: `peer-${resources.runId}`,
    tasks: options.tasks,
    cpuGroups: options.cpuGroups,
    childrenOf: options.postmaster === undefined ? {} : { postgres: options.postmaster },
  });
  return { preload, drain, tasks: options.tasks, unnest: true };
}
