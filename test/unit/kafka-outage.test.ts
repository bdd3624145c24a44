/**
 * Which Kafka failures start-up waits out (an outage) and which stop it (nothing a wait cures),
 * on kafkajs's own error classes as its clients throw them.
 */
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { isKafkaOutage } from '../../src/pipeline/kafka-client';

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
    expect(isKafkaOutage(new KafkaJSSASLAuthenticationError('SASL PLAIN authentication failed'))).toBe(false);
    expect(isKafkaOutage(new Error('the DLQ topic is too small'))).toBe(false);
    expect(isKafkaOutage(undefined)).toBe(false);
  });
});
