import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { configVariableNames, loadConfig, projectRoot } from '../../src/config';
import { problemsOf } from '../helpers/config-problems';

describe('loadConfig', () => {
  it('gives the embedded stack defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config.databaseUrl).toBe('postgres://hunt@127.0.0.1:15432/hunt');
    expect(config.kafka.brokers).toEqual(['127.0.0.1:19092']);
    expect(config.kafka.topics).toEqual({ events: 'hunt.events', dlq: 'hunt.events.dlq' });
    expect(config.temporal).toMatchObject({ address: '127.0.0.1:7233', taskQueue: 'hunt-batch', uiUrl: 'http://127.0.0.1:8233' });
    expect(config.external).toEqual({});
    expect(config.stack.stateDir).toBe(path.join(projectRoot, '.hunt'));
  });

  it('uses services given by DATABASE_URL, KAFKA_BROKERS and TEMPORAL_ADDRESS', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgresql://u:p@db.example:5432/x',
      KAFKA_BROKERS: 'k1:9092, k2:9092',
      TEMPORAL_ADDRESS: 'temporal:7233',
    });
    expect(config.databaseUrl).toBe('postgresql://u:p@db.example:5432/x');
    expect(config.kafka.brokers).toEqual(['k1:9092', 'k2:9092']);
    expect(config.temporal.address).toBe('temporal:7233');
    expect(config.temporal.uiUrl).toBeUndefined();
    expect(config.external.kafkaBrokers).toEqual(['k1:9092', 'k2:9092']);
  });

  it('treats an empty value as unset', () => {
    expect(loadConfig({ HUNT_PG_PORT: '', DATABASE_URL: '' }).databaseUrl).toBe('postgres://hunt@127.0.0.1:15432/hunt');
  });

  it.each([
    ['HUNT_PG_PORT', 'not-a-port'],
    ['HUNT_PG_PORT', '70000'],
    ['API_PORT', '8080.5'],
    ['DATABASE_URL', 'mysql://x'],
    ['KAFKA_BROKERS', 'localhost'],
    ['KAFKA_BROKERS', ' , '],
    ['TEMPORAL_ADDRESS', 'no-port'],
    ['KAFKA_TOPIC_EVENTS', 'has space'],
    ['LOG_LEVEL', 'loud'],
    ['HUNT_KAFKA_HEAP', 'lots'],
    ['INGEST_COMMIT_LANES', '0'],
    ['INGEST_COMMIT_LANES', '17'],
    ['BACKFILL_TOPICS', 'hunt.events,bad topic'],
    ['BACKFILL_TOPICS', ' , '],
  ])('rejects %s=%j naming the variable and what is expected', (variable, value) => {
    const problems = problemsOf({ [variable]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ variable, got: value });
    expect(problems[0]?.expected.length).toBeGreaterThan(0);
  });

  it('documents every variable in docs/configuration.md', () => {
    const doc = fs.readFileSync(path.join(projectRoot, 'docs', 'configuration.md'), 'utf8');
    const undocumented = configVariableNames.filter((name) => !doc.includes(`| \`${name}\` |`));
    expect(undocumented).toEqual([]);
  });

  it('reports every bad variable at once, in a message that names each', () => {
    let message = '';
    try {
      loadConfig({ HUNT_PG_PORT: 'x', LOG_LEVEL: 'loud' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/HUNT_PG_PORT: expected .+, got "x"/);
    expect(message).toMatch(/LOG_LEVEL: expected .*info.*, got "loud"/);
  });

  it('lets backfills read only the input topic unless BACKFILL_TOPICS says more', () => {
    expect(loadConfig({}).backfill.topics).toEqual(['hunt.events']);
    expect(loadConfig({ KAFKA_TOPIC_EVENTS: 'game.events' }).backfill.topics).toEqual(['game.events']);
    expect(loadConfig({ BACKFILL_TOPICS: 'hunt.events, archive.*' }).backfill.topics).toEqual(['hunt.events', 'archive.*']);
  });

  it("caps the job steps a worker runs at once, 8 unless told otherwise (the SDK's own default is 100)", () => {
    expect(loadConfig({}).worker.maxConcurrentActivities).toBe(8);
    expect(loadConfig({ WORKER_MAX_CONCURRENT_ACTIVITIES: '2' }).worker.maxConcurrentActivities).toBe(2);
    expect(() => loadConfig({ WORKER_MAX_CONCURRENT_ACTIVITIES: '0' })).toThrow(/WORKER_MAX_CONCURRENT_ACTIVITIES: expected a whole number of job steps/);
  });

  it('keeps past runs\' records 30 days unless told otherwise, and never less than a week', () => {
    expect(loadConfig({}).worker.jobRecordsKeepDays).toBe(30);
    expect(loadConfig({ JOB_RECORDS_KEEP_DAYS: '90' }).worker.jobRecordsKeepDays).toBe(90);
    expect(() => loadConfig({ JOB_RECORDS_KEEP_DAYS: '3' })).toThrow(/JOB_RECORDS_KEEP_DAYS: expected a whole number of days, 7-3650/);
  });

  it('beats idle live streams well within the contract\'s 15 s, and refuses a setting that would break it', () => {
    expect(loadConfig({}).api.streamHeartbeatMs).toBe(10_000);
    expect(loadConfig({ API_STREAM_HEARTBEAT_MS: '14000' }).api.streamHeartbeatMs).toBe(14_000);
    expect(() => loadConfig({ API_STREAM_HEARTBEAT_MS: '15000' })).toThrow(/API_STREAM_HEARTBEAT_MS: expected a whole number of milliseconds, 100-14000/);
  });

  it('refuses values that parse but would not hold: no keep-alive limit, fetch sizes past 32 bits, streams that could take every connection', () => {
    expect(() => loadConfig({ API_KEEP_ALIVE_TIMEOUT_MS: '0' })).toThrow(/API_KEEP_ALIVE_TIMEOUT_MS: expected a whole number of milliseconds, 1-600000/);
    expect(() => loadConfig({ KAFKA_FETCH_MAX_BYTES: '3000000000' })).toThrow(/KAFKA_FETCH_MAX_BYTES: expected a whole number of bytes, 1-268435456/);
    expect(() => loadConfig({ KAFKA_PARTITION_FETCH_MAX_BYTES: '3000000000' })).toThrow(/KAFKA_PARTITION_FETCH_MAX_BYTES: expected a whole number of bytes/);
    expect(() => loadConfig({ API_MAX_STREAMS: '2000' })).toThrow(/API_MAX_STREAMS: expected fewer live streams than API_MAX_CONNECTIONS \(1024\)/);
    expect(loadConfig({ API_MAX_STREAMS: '2000', API_MAX_CONNECTIONS: '4096' }).api.maxStreams).toBe(2000);
    // The ops listener needs a port of its own.
    expect(() => loadConfig({ API_PORT: '8080', API_OPS_PORT: '8080' })).toThrow(/API_OPS_PORT: expected a port other than API_PORT \(8080\)/);
    expect(loadConfig({ API_OPS_PORT: '9090' }).api.opsPort).toBe(9090);
    expect(loadConfig({}).api.opsPort).toBeUndefined();
    // Not set: three quarters of the connections, so lowering those alone still starts.
    expect(loadConfig({}).api.maxStreams).toBe(768);
    expect(loadConfig({ API_MAX_CONNECTIONS: '512' }).api.maxStreams).toBe(384);
    expect(loadConfig({ API_MAX_CONNECTIONS: '1' }).api.maxStreams).toBe(0); // the one connection stays for reads
  });

  it('refuses a DLQ topic that is the input topic, to Kafka, naming KAFKA_TOPIC_DLQ', () => {
    expect(() => loadConfig({ KAFKA_TOPIC_EVENTS: 'game.events', KAFKA_TOPIC_DLQ: 'game.events' })).toThrow(/KAFKA_TOPIC_DLQ: expected a topic other than KAFKA_TOPIC_EVENTS \(game\.events\)/);
    expect(() => loadConfig({ KAFKA_TOPIC_EVENTS: 'game.events', KAFKA_TOPIC_DLQ: 'game_events' })).toThrow(/KAFKA_TOPIC_DLQ/);
    expect(() => loadConfig({ KAFKA_TOPIC_DLQ: 'hunt.events' })).toThrow(/KAFKA_TOPIC_DLQ/);
    expect(loadConfig({ KAFKA_TOPIC_EVENTS: 'game.events', KAFKA_TOPIC_DLQ: 'game.events.dlq' }).kafka.topics.dlq).toBe('game.events.dlq');
  });

  it('stops the hunt command at start-up with exit code 78 and the variable name', async () => {
    const run = promisify(execFile);
    const error = await run('node', [path.join(projectRoot, 'bin/hunt.js'), 'stack', 'status'], {
      env: { ...process.env, HUNT_KAFKA_PORT: 'ninety' },
    }).catch((err: unknown) => err as { code: number; stderr: string });
    expect(error).toMatchObject({ code: 78 });
    expect((error as { stderr: string }).stderr).toContain('HUNT_KAFKA_PORT: expected');
  });
});
