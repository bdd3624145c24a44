/**
 * Which failures to reach Kafka or Temporal start-up waits out (an outage) and which stop it
 * (nothing a wait cures): kafkajs's own error classes as its clients throw them, and the
 * worker core's TransportError texts as NativeConnection.connect gave them here.
 */
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { kafkaClosedConnectionHint } from '../../src/connection-hints';
import { connectAtStartup } from '../../src/backoff';
import { isKafkaOutage } from '../../src/pipeline/kafka-client';
import { isTemporalUnreachable } from '../../src/temporal/client';

const { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError, KafkaJSSASLAuthenticationError } = kafkajs;

describe('isKafkaOutage', () => {
  it('sees a refused connection inside the error kafkajs throws once its own retries are spent', () => {
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    expect(isKafkaOutage(refused)).toBe(true);
    expect(isKafkaOutage(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 4000 }))).toBe(true);
  });

  it('sees a leader being elected as passing', () => {
    expect(isKafkaOutage(new KafkaJSProtocolError({ type: 'LEADER_NOT_AVAILABLE', code: 5, retriable: true, message: 'There is no leader' } as never))).toBe(true);
  });

  it('does not wait on refusals: authorization, credentials, or an error not from kafkajs', () => {
    expect(isKafkaOutage(new KafkaJSProtocolError({ type: 'TOPIC_AUTHORIZATION_FAILED', code: 29, retriable: false, message: 'Not authorized' } as never))).toBe(false);
    // Its typings declare no arguments; kafkajs's class takes the message like the others.
    expect(isKafkaOutage(Reflect.construct(KafkaJSSASLAuthenticationError, ['SASL PLAIN authentication failed']))).toBe(false);
    expect(isKafkaOutage(new Error('the DLQ topic is too small'))).toBe(false);
    expect(isKafkaOutage(undefined)).toBe(false);
  });
});

function transportError(message: string): Error {
  const err = new Error(message);
  err.name = 'TransportError';
  return err;
}

describe('isTemporalUnreachable', () => {
  it('sees a refused connection and a failed DNS lookup', () => {
    expect(isTemporalUnreachable(transportError('tonic::transport::Error(Transport, ConnectError(ConnectError("tcp connect error", 127.0.0.1:7299, Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })))'))).toBe(true);
    expect(isTemporalUnreachable(transportError('tonic::transport::Error(Transport, ConnectError(ConnectError("dns error", Custom { kind: Uncategorized, error: "failed to lookup address information: Name or service not known" })))'))).toBe(true);
  });

  it('sees a connection cut at once and a server not serving yet (gRPC UNAVAILABLE)', () => {
    expect(isTemporalUnreachable(transportError('hyper::Error(Io, Kind(ConnectionReset))'))).toBe(true);
    expect(isTemporalUnreachable(transportError('tonic::transport::Error(Transport, hyper::Error(Io, Kind(BrokenPipe)))'))).toBe(true);
    expect(isTemporalUnreachable(Object.assign(new Error('14 UNAVAILABLE: The service is currently unavailable'), { code: 14 }))).toBe(true);
  });

  it('does not wait on what Temporal answered, or on an error of another kind', () => {
    expect(isTemporalUnreachable(new Error('tcp connect error'))).toBe(false);
    expect(isTemporalUnreachable(transportError('Unauthenticated: invalid API key'))).toBe(false);
    expect(isTemporalUnreachable(undefined)).toBe(false);
  });
});

describe('kafkaClosedConnectionHint', () => {
  it('says which settings a listener that closes every connection may want, while start-up waits on it', () => {
    const closed = new KafkaJSConnectionError('Closed connection');
    expect(kafkaClosedConnectionHint(closed)).toMatch(/set KAFKA_TLS or KAFKA_SASL_MECHANISM/);
    expect(kafkaClosedConnectionHint(closed, { tls: {} } as never)).toMatch(/set KAFKA_SASL_MECHANISM$/);
    expect(kafkaClosedConnectionHint(new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092'))).toBeUndefined();
  });
});

describe('connectAtStartup', () => {
  it('waits out an outage and returns what the first successful try gives', async () => {
    let tries = 0;
    const waits: number[] = [];
    const value = await connectAtStartup(
      async () => {
        if (++tries < 3) throw new Error('down');
        return 'connected';
      },
      { fatal: () => undefined, onWait: (_err, attempt) => waits.push(attempt) },
    );
    expect(value).toBe('connected');
    expect(waits).toEqual([1, 2]);
  });

  it('stops on what `fatal` calls fatal, with its error', async () => {
    const refused = new Error('refused credentials');
    await expect(connectAtStartup(() => Promise.reject(new Error('auth')), { fatal: () => refused, onWait: () => undefined })).rejects.toBe(refused);
  });

  it('ends an attempt in flight when its signal is aborted, and discards what that attempt gives later', async () => {
    const stop = new AbortController();
    let finish: (value: string) => void = () => undefined;
    const discarded: string[] = [];
    const waiting = connectAtStartup(() => new Promise<string>((resolve) => (finish = resolve)), {
      fatal: () => undefined,
      onWait: () => undefined,
      signal: stop.signal,
      discard: async (late) => void discarded.push(late),
    });
    const reason = new Error('asked to stop');
    stop.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    finish('late connection');
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(discarded).toEqual(['late connection']);
  });
});
