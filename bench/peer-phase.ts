/**
 * The ingest benchmark's industry peer, measured in the same run as ours: Kafka Connect with
 * the Debezium JDBC sink (bench/peer/), on the same generated events wrapped in Connect's
 * embedded-schema JSON, upserting raw rows by eventId with its best writer (UNNEST). Its rate
 * is comparable to ours; what it does per event is far less (no validation, no scoring, no
 * exactly-once offsets in the same transaction).
 *
 * The sink's parallelism is its `tasks.max`, and one task is not its best: a task polls,
 * writes and waits for the commit before it polls again, so one task leaves the machine half
 * idle. The events are preloaded once and drained once per task count (each into its own
 * database, by its own consumer group); ours is compared with the fastest.
 */
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import type { CpuGroups } from './lib/procfs';
import type { BenchResources } from './lib/resources';
import type { ConnectEventsResult } from './peer/connect-events';
import { produceConnectEvents, runConnectPeer, type ConnectPeerResult } from './peer/connect-peer';

export interface PeerPhaseResult {
  preload: ConnectEventsResult;
  /** The fastest drain, the one ours is compared with. */
  drain: ConnectPeerResult;
  /** Its task count. */
  tasks: number;
  /** Every drain, one per task count, in the order run. */
  runs: { tasks: number; drain: ConnectPeerResult }[];
  unnest: boolean;
}

export async function measurePeer(
  kafka: Kafka,
  resources: BenchResources,
  options: { events: number; hunts: number; players: number; duplicates: number; seed: number; brokers: string[]; rawDir: string; taskCounts: readonly number[]; cpuGroups: CpuGroups; postmaster?: number },
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
  const runs: PeerPhaseResult['runs'] = [];
  for (const tasks of options.taskCounts) {
    const drain = await runConnectPeer({
      brokers: options.brokers.join(','),
      topic,
      databaseUrl: await resources.createDatabase(`peer${tasks}`),
      expectedRecords: preload.distinctEventIds,
      logDir: path.join(options.rawDir, 'peer'),
      unnest: true,
      mode: 'upsert',
      name: `peer-${resources.runId}-tasks${tasks}`,
      tasks,
      cpuGroups: options.cpuGroups,
      childrenOf: options.postmaster === undefined ? {} : { postgres: options.postmaster },
    });
    resources.trackGroup(drain.groupId);
    runs.push({ tasks, drain });
  }
  const best = runs.reduce((a, b) => (b.drain.eventsPerSecond > a.drain.eventsPerSecond ? b : a));
  return { preload, drain: best.drain, tasks: best.tasks, runs, unnest: true };
}
