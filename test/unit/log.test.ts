import { describe, expect, it } from 'vitest';
import { kafkajsLevel } from '../../src/log';

describe('kafkajs log levels', () => {
  it.each([
    'The coordinator is loading and hence can\'t process requests',
    'The group coordinator is not available',
    'There is no leader for this topic-partition as we are in the middle of a leadership election',
    'This server is not the leader for that topic-partition',
    'Connection error: connect ECONNREFUSED 127.0.0.1:19092',
    'Failed to connect to seed broker, trying another broker from the list: Connection error',
  ])('demotes a state kafkajs retries by itself: %s', (message) => {
    expect(kafkajsLevel('error', message)).toBe('debug');
  });

  it.each([
    ['Response InitProducerId(key: 22, version: 1)', "The coordinator is loading and hence can't process requests for this group"],
    ['Response GroupCoordinator(key: 10, version: 2)', 'The group coordinator is not available'],
    // The trailing offset commit of a member whose group rebalanced meanwhile.
    ['Response OffsetCommit(key: 8, version: 5)', 'Specified group generation id is not valid'],
  ])('demotes a broker response whose error is such a state: %s', (message, error) => {
    expect(kafkajsLevel('error', message, error)).toBe('debug');
  });

  it('keeps real errors and other levels as they are', () => {
    expect(kafkajsLevel('error', 'Response Produce(key: 0, version: 7)', 'The request included a message larger than the max message size the server will accept')).toBe('error');
    expect(kafkajsLevel('error', 'SASL SCRAM-SHA-256 authentication failed')).toBe('error');
    expect(kafkajsLevel('error', 'The request included a message larger than the max message size the server will accept')).toBe('error');
    expect(kafkajsLevel('info', 'Consumer has joined the group')).toBe('info');
  });
});
