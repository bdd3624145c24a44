import { afterEach, describe, expect, it, vi } from 'vitest';
import { IngestHealth, watchStartup } from '../../src/ingest/health';
import { createIngestMetrics } from '../../src/ingest/metrics';

const STALL_LIMIT_MS = 30_000;
const T0 = 1_000_000;

function healthAt(now: number) {
  const metrics = createIngestMetrics();
  const health = new IngestHealth({ stallLimitMs: STALL_LIMIT_MS, lanes: [{ stalledMs: () => 0 }], partitionsOfLane: () => [], metrics }, now);
  const stalledGauge = async () => (await metrics.registry.getSingleMetricAsString('hunt_ingest_stalled')).split('\n').at(-1);
  return { health, stalledGauge };
}

describe('readiness and the consumer group', () => {
  it('turns red when the consumer never joins its group within the stall limit (a join kafkajs retries for ever)', async () => {
    const { health, stalledGauge } = healthAt(T0);
    expect(health.status(T0 + STALL_LIMIT_MS + 60_000)).toEqual({ ready: true }); // a join may wait out a rebalance
    const status = health.status(T0 + 600_000);
    expect(status).toEqual({ ready: false, reason: expect.stringMatching(/has not been a member of its group for 600 s \(a rebalance may take 60 s, plus the stall limit 30 s\)/) });
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 1');
  });

  it('is ready once joined, even with no partition assigned, and red again if a rejoin does not end', async () => {
    const { health, stalledGauge } = healthAt(T0);
    health.setAssignment([], T0 + 1000); // more members than partitions: a member with nothing to do is healthy
    expect(health.status(T0 + 600_000)).toEqual({ ready: true });
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 0');

    health.markOutOfGroup(T0 + 600_000); // a rebalance began
    health.markOutOfGroup(T0 + 620_000); // a crash during it does not restart the clock
    expect(health.status(T0 + 680_000)).toEqual({ ready: true }); // 80 s: a slow rebalance
    expect(health.status(T0 + 700_000)).toMatchObject({ ready: false, reason: expect.stringMatching(/for 100 s/) });

    health.setAssignment([0, 1], T0 + 701_000);
    expect(health.status(T0 + 701_000)).toEqual({ ready: true });
  });
});

describe('readiness when the partitions cannot be observed', () => {
  it('turns red once the offsets could not be read for the stall limit, and ready again at the next reading', async () => {
    const { health, stalledGauge } = healthAt(T0);
    health.setAssignment([0], T0);
    health.markUnobserved(T0 + 1000); // Postgres down: no lane is busy, nothing else would say so
    health.markUnobserved(T0 + 20_000); // a later failure does not restart the clock
    expect(health.status(T0 + 30_000)).toEqual({ ready: true });
    expect(health.status(T0 + 32_000)).toEqual({ ready: false, reason: expect.stringMatching(/progress could not be read for 31 s \(stall limit 30 s\): Postgres or Kafka unreachable/) });
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 1');
    health.observePartitions(new Map([[0, { low: 0n, high: 5n }]]), new Map([[0, 5n]]), 't', T0 + 33_000);
    expect(health.status(T0 + 33_000)).toEqual({ ready: true });
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 0');
  });
});

describe('readiness and a partition that was idle', () => {
  it('starts the stall clock when records begin to wait, not when the offset last moved', async () => {
    const { health, stalledGauge } = healthAt(T0);
    health.setAssignment([0], T0);
    health.observePartitions(new Map([[0, { low: 0n, high: 5n }]]), new Map([[0, 5n]]), 't', T0 + 1000);
    health.observePartitions(new Map([[0, { low: 0n, high: 5n }]]), new Map([[0, 5n]]), 't', T0 + 55_000);
    // A minute idle, then a record a tick sees before its commit (a linger, a commit's few ms).
    health.observePartitions(new Map([[0, { low: 0n, high: 6n }]]), new Map([[0, 5n]]), 't', T0 + 60_000);
    expect(health.status(T0 + 60_000)).toEqual({ ready: true });
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 0');
    // Still waiting past the stall limit: a stall, timed from when it began to wait.
    health.observePartitions(new Map([[0, { low: 0n, high: 6n }]]), new Map([[0, 5n]]), 't', T0 + 91_000);
    expect(health.status(T0 + 91_000)).toEqual({ ready: false, reason: expect.stringMatching(/^partition\(s\) 0 \(36 s\) have records waiting/) });
  });

  it('starts the clock of a transaction left open when the log goes past the committed end, not when the end last moved', () => {
    const { health } = healthAt(T0);
    health.setAssignment([0], T0);
    health.observePartitions(new Map([[0, { low: 0n, high: 5n, logEnd: 5n }]]), new Map([[0, 5n]]), 't', T0 + 1000);
    health.observePartitions(new Map([[0, { low: 0n, high: 5n, logEnd: 5n }]]), new Map([[0, 5n]]), 't', T0 + 55_000);
    // A minute quiet, then a transaction begins (or a record lands between the two reads of the ends).
    health.observePartitions(new Map([[0, { low: 0n, high: 5n, logEnd: 6n }]]), new Map([[0, 5n]]), 't', T0 + 60_000);
    expect(health.status(T0 + 60_000)).toEqual({ ready: true });
    health.observePartitions(new Map([[0, { low: 0n, high: 5n, logEnd: 6n }]]), new Map([[0, 5n]]), 't', T0 + 92_000);
    expect(health.status(T0 + 92_000)).toMatchObject({ ready: false, reason: expect.stringMatching(/records from offset 5 to 6, 37 s/) });
  });
});

describe('readiness and transactions left open', () => {
  const marks = (high: bigint, logEnd: bigint) => new Map([[0, { low: 0n, high, logEnd }]]);
  const stored = (offset: bigint) => new Map([[0, offset]]);

  it('turns red when records wait past a committed end that has not moved for the stall limit, and names them', async () => {
    const { health, stalledGauge } = healthAt(T0);
    health.setAssignment([0], T0);
    health.observePartitions(marks(5n, 6n), stored(5n), 't', T0 + 1000); // a transaction began at offset 5
    health.observePartitions(marks(5n, 9n), stored(5n), 't', T0 + 20_000);
    expect(health.status(T0 + 20_000)).toEqual({ ready: true });
    health.observePartitions(marks(5n, 12n), stored(5n), 't', T0 + 32_000);
    expect(health.status(T0 + 32_000)).toEqual({
      ready: false,
      reason: expect.stringMatching(/^partition\(s\) 0 \(records from offset 5 to 12, 31 s\) wait behind a transaction a producer has left open/),
    });
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 1');
    // The producer aborts (or the broker times it out): the committed end moves on.
    health.observePartitions(marks(13n, 13n), stored(5n), 't', T0 + 33_000);
    health.observePartitions(marks(13n, 13n), stored(13n), 't', T0 + 34_000);
    expect(health.status(T0 + 34_000)).toEqual({ ready: true });
  });

  it('stays green while transactions keep committing, however far the log runs ahead', () => {
    const { health } = healthAt(T0);
    health.setAssignment([0], T0);
    for (let i = 1; i <= 10; i++) health.observePartitions(marks(BigInt(i * 100), BigInt(i * 100 + 50)), stored(BigInt(i * 100)), 't', T0 + i * 10_000);
    expect(health.status(T0 + 100_000)).toEqual({ ready: true });
  });
});


describe('the lag gauge', () => {
  it('drops the series of a partition the topic no longer has (recreated with fewer partitions)', async () => {
    const metrics = createIngestMetrics();
    const health = new IngestHealth({ stallLimitMs: STALL_LIMIT_MS, lanes: [], partitionsOfLane: () => [], metrics }, T0);
    const lagSeries = async () => (await metrics.registry.getSingleMetricAsString('hunt_ingest_consumer_lag')).split('\n').filter((line) => !line.startsWith('#'));
    health.observePartitions(new Map([[0, { low: 0n, high: 10n }], [1, { low: 0n, high: 20n }]]), new Map([[0, 4n], [1, 5n]]), 't', T0 + 1000);
    expect(await lagSeries()).toEqual(['hunt_ingest_consumer_lag{topic="t",partition="0"} 6', 'hunt_ingest_consumer_lag{topic="t",partition="1"} 15']);
    health.observePartitions(new Map([[0, { low: 0n, high: 3n }]]), new Map([[0, 3n]]), 't', T0 + 2000);
    expect(await lagSeries()).toEqual(['hunt_ingest_consumer_lag{topic="t",partition="0"} 0']);
  });
});

describe('a partition stopped at a retention gap', () => {
  it('stops being this member\'s report while the partition is another member\'s, and is again when it comes back', async () => {
    const { health, stalledGauge } = healthAt(T0);
    health.setAssignment([0, 1], T0);
    health.markStoppedAtGap(1, 'partition 1 lost 5 records to retention');
    health.setAssignment([0, 1], T0 + 1000); // a rebalance that leaves it here: still stopped
    expect(health.status(T0 + 2000)).toEqual({ ready: false, reason: 'partition 1 lost 5 records to retention' });
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 1');
    health.setAssignment([0], T0 + 3000); // partition 1 went to another member, which meets the gap itself
    expect(health.status(T0 + 3000)).toEqual({ ready: true });
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 0');
    // Back here, kafkajs still has it paused: stopped, and said so.
    health.setAssignment([0, 1], T0 + 4000);
    expect(health.isStoppedAtGap(1)).toBe(true);
    expect(health.status(T0 + 4000)).toEqual({ ready: false, reason: 'partition 1 lost 5 records to retention' });
  });
});

describe('a process that has not started consuming', () => {
  afterEach(() => vi.useRealTimers());

  it('says it is stalled once start-up has waited as long as a member may be out of its group, and stops saying so once started', async () => {
    vi.useFakeTimers();
    const metrics = createIngestMetrics();
    const stalledGauge = async () => (await metrics.registry.getSingleMetricAsString('hunt_ingest_stalled')).split('\n').at(-1);
    const startup = watchStartup(metrics, STALL_LIMIT_MS);
    vi.advanceTimersByTime(STALL_LIMIT_MS + 60_000 - 1);
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 0');
    vi.advanceTimersByTime(1); // still waiting for Kafka, say
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 1');
    // The consumer's health, counting from the same start, says the same when it takes over.
    const health = new IngestHealth({ stallLimitMs: STALL_LIMIT_MS, lanes: [{ stalledMs: () => 0 }], partitionsOfLane: () => [], metrics }, startup.startedAt);
    startup.started();
    expect(health.status(startup.startedAt + STALL_LIMIT_MS + 60_001)).toMatchObject({ ready: false });
    expect(await stalledGauge()).toBe('hunt_ingest_stalled 1');

    const quick = createIngestMetrics();
    const quickGauge = async () => (await quick.registry.getSingleMetricAsString('hunt_ingest_stalled')).split('\n').at(-1);
    watchStartup(quick, STALL_LIMIT_MS).started();
    vi.advanceTimersByTime(2 * (STALL_LIMIT_MS + 60_000));
    expect(await quickGauge()).toBe('hunt_ingest_stalled 0');
  });
});
