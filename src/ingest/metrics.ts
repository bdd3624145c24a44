/** Prometheus metrics of the hot path (prom-client), served at GET /metrics. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createIngestMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    recordsRead: new Counter({ name: 'hunt_ingest_records_read_total', help: 'Kafka records read', registers: [registry] }),
    eventsAccepted: new Counter({
      name: 'hunt_ingest_events_accepted_total',
      help: 'Events stored and scored for the first time',
      registers: [registry],
    }),
    duplicatesSkipped: new Counter({
      name: 'hunt_ingest_duplicates_skipped_total',
      help: 'Valid events whose eventId was already stored: no effect',
      registers: [registry],
    }),
    plainInsertConflicts: new Counter({
      name: 'hunt_ingest_plain_insert_conflicts_total',
      help: 'Micro-batches sent with a plain insert that met an eventId already stored (one the consumer did not remember, or a retry of a commit whose answer was lost): committed again with the check, at the cost of a transaction',
      registers: [registry],
    }),
    rejects: new Counter({
      name: 'hunt_ingest_rejects_total',
      help: 'Records rejected to quarantine (and their copies to the DLQ), by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'hunt_ingest_batch_records',
      help: 'Records per micro-batch transaction',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000],
      registers: [registry],
    }),
    transactionSeconds: new Histogram({
      name: 'hunt_ingest_transaction_seconds',
      help: 'Duration of one micro-batch transaction',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    freshnessSeconds: new Histogram({
      name: 'hunt_ingest_freshness_seconds',
      help: "Commit time minus the record's Kafka timestamp",
      // Fine around the targets (p50 10 ms, p99 25 ms, the SLO's 50 ms), so the shares below them are counted, not interpolated.
      buckets: [0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    // Freshness split in two: up to here, producer, broker and fetch; after, our buffer and commit.
    fetchDelaySeconds: new Histogram({
      name: 'hunt_ingest_fetch_delay_seconds',
      help: "Time a record reached the consumer minus its Kafka timestamp (producer, broker and fetch)",
      buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    consumerLag: new Gauge({
      name: 'hunt_ingest_consumer_lag',
      help: 'Records between the position committed to Postgres and the high watermark, per partition (measured on a timer)',
      labelNames: ['topic', 'partition'] as const,
      registers: [registry],
    }),
    commitRetries: new Counter({
      name: 'hunt_ingest_commit_retries_total',
      help: 'Micro-batch commits retried after an outage (Postgres unreachable, timeouts)',
      registers: [registry],
    }),
    commitSplits: new Counter({
      name: 'hunt_ingest_commit_splits_total',
      help: 'Micro-batch commits that ran out of time (statement limit) or of temporary file space (temp_file_limit) and went on in smaller parts',
      registers: [registry],
    }),
    postgresConnectionsCut: new Counter({
      name: 'hunt_ingest_postgres_connections_cut_total',
      help: 'Pooled Postgres connections cut because their session sat idle while a query waited on them (a connection dead without a word); the query is retried on a new one',
      registers: [registry],
    }),
    dlqCopiesSent: new Counter({
      name: 'hunt_ingest_dlq_copies_sent_total',
      help: 'Rejects copied to the DLQ topic by the relay (a copy is sent again after a relay died mid-send)',
      registers: [registry],
    }),
    dlqRelayFailures: new Counter({
      name: 'hunt_ingest_dlq_relay_failures_total',
      help: 'DLQ relay passes that failed (the DLQ topic or Postgres unreachable, a send refused); retried with backoff',
      registers: [registry],
    }),
    dlqCopiesPending: new Gauge({
      name: 'hunt_ingest_dlq_copies_pending',
      help: 'Quarantined rejects of the hot path whose DLQ copies are not sent yet (the whole group\'s, counted in Postgres)',
      registers: [registry],
    }),
    dlqCopiesRefused: new Gauge({
      name: 'hunt_ingest_dlq_copies_refused',
      help: 'Of the DLQ copies not sent yet, those the DLQ topic refused for the record itself (a compacted DLQ and a reject without a key); each is tried again after half the time it has waited, 10 minutes to 6 hours',
      registers: [registry],
    }),
    dlqCopiesSetAside: new Counter({
      name: 'hunt_ingest_dlq_copies_set_aside_total',
      help: 'Times the DLQ relay set a copy aside because the DLQ topic refused the record itself; the copies behind it went on',
      registers: [registry],
    }),
    dlqOldestPendingSeconds: new Gauge({
      name: 'hunt_ingest_dlq_oldest_pending_seconds',
      help: 'Age of the oldest reject whose DLQ copy is not sent yet (0 when none)',
      registers: [registry],
    }),
    isolations: new Counter({
      name: 'hunt_ingest_isolations_total',
      help: 'Micro-batches the database refused for their data, split to isolate the records responsible',
      registers: [registry],
    }),
    laneStalledSeconds: new Gauge({
      name: 'hunt_ingest_lane_stalled_seconds',
      help: 'How long a commit lane has held records without committing any (0 when idle or flowing)',
      labelNames: ['lane'] as const,
      registers: [registry],
    }),
    stalled: new Gauge({
      name: 'hunt_ingest_stalled',
      help: '1 while /readyz reports the consumer crashed, stalled or stopped at a retention gap',
      registers: [registry],
    }),
    retentionGapRecords: new Counter({
      name: 'hunt_ingest_retention_gap_records_total',
      help: 'Records deleted by retention before the consumer read them (lost), by partition',
      labelNames: ['topic', 'partition'] as const,
      registers: [registry],
    }),
    logResets: new Counter({
      name: 'hunt_ingest_log_resets_total',
      help: 'Times a partition\'s log was found to end before the stored position (topic recreated or log truncated) and was read again from its start',
      labelNames: ['topic', 'partition'] as const,
      registers: [registry],
    }),
    implausibleTimestamps: new Counter({
      name: 'hunt_ingest_implausible_timestamps_total',
      help: 'Accepted events whose Kafka timestamp is unset or more than 5 s ahead of the consumer clock (a producer clock wrong): left out of freshness',
      registers: [registry],
    }),
    filteredRecordsPassed: new Counter({
      name: 'hunt_ingest_filtered_records_passed_total',
      help: 'Offsets passed without a record handed over: transaction markers and aborted transactions that kafkajs filtered out of whole fetches, by partition',
      labelNames: ['topic', 'partition'] as const,
      registers: [registry],
    }),
    partitionsAssigned: new Gauge({
      name: 'hunt_ingest_partitions_assigned',
      help: 'Partitions of the input topic this member owns (1 per owned partition)',
      labelNames: ['topic', 'partition'] as const,
      registers: [registry],
    }),
    consumerCrashes: new Counter({
      name: 'hunt_ingest_consumer_crashes_total',
      help: 'Times the Kafka consumer crashed, by whether it restarts by itself',
      labelNames: ['restart'] as const,
      registers: [registry],
    }),
    batchTarget: new Gauge({
      name: 'hunt_ingest_batch_target_records',
      help: 'Current micro-batch size target (adaptive mode moves it)',
      registers: [registry],
    }),
  };
}

export type IngestMetrics = ReturnType<typeof createIngestMetrics>;
