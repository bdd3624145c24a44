import { describe, expect, it, vi } from 'vitest';
import type { Producer, ProducerRecord } from 'kafkajs';
import { createEventProducer, EventValidationError, newEvent } from '../../src/events/producer';
import type { HuntEvent } from '../../src/events/schema';
import { classifyRecord } from '../../src/events/validate';
import { clueFound, T0_MS } from '../helpers/event-builders';

function fakeProducer() {
  const sent: ProducerRecord[] = [];
  const producer = { send: vi.fn(async (record: ProducerRecord) => (sent.push(record), [])) };
  return { producer: producer as unknown as Producer, sent };
}

const now = () => new Date(T0_MS);

describe('createEventProducer', () => {
  it('keys each message by huntId as UTF-8 and sends the event JSON', async () => {
    const { producer, sent } = fakeProducer();
    const events = [clueFound({ eventId: 'a', huntId: 'h1' }), clueFound({ eventId: 'b', huntId: 'h2' })];
    await createEventProducer({ producer, topic: 'hunt.events', now }).send(events);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.topic).toBe('hunt.events');
    const messages = sent[0]?.messages ?? [];
    expect(messages.map((m) => (m.key as Buffer).toString('utf8'))).toEqual(['h1', 'h2']);
    expect(messages.map((m) => JSON.parse((m.value as Buffer).toString('utf8')) as unknown)).toEqual(events);
  });

  it('sends nothing and names the event when one is invalid', async () => {
    const { producer, sent } = fakeProducer();
    const bad = { ...clueFound({ eventId: 'bad-1' }), payload: { clueId: 'c1', points: 5000 } } as HuntEvent;
    const send = createEventProducer({ producer, topic: 't', now }).send([clueFound({ eventId: 'ok' }), bad]);
    await expect(send).rejects.toThrow(EventValidationError);
    await expect(send).rejects.toThrow(
      'event bad-1 would be rejected as schema_violation: payload.points: expected integer 0-1000, got 5000',
    );
    expect(sent).toHaveLength(0);
  });

  it('applies the consumer checks: size limit and future timestamps', async () => {
    const { producer } = fakeProducer();
    const events = createEventProducer({ producer, topic: 't', now });
    const future = clueFound({ eventId: 'f', occurredAt: '2026-11-22T10:05:00.001Z' });
    await expect(events.send([future])).rejects.toMatchObject({ eventId: 'f', reason: 'future_timestamp' });
    const huge = { ...clueFound({ eventId: 'x' }), padding: 'x'.repeat(70_000) } as unknown as HuntEvent;
    await expect(events.send([huge])).rejects.toMatchObject({ reason: 'too_large' });
  });

  it('does not call Kafka for an empty batch', async () => {
    const { producer, sent } = fakeProducer();
    expect(await createEventProducer({ producer, topic: 't' }).send([])).toEqual([]);
    expect(sent).toHaveLength(0);
  });
});

describe('newEvent', () => {
  it('fills in a UUID eventId, schemaVersion 1 and occurredAt now', () => {
    const before = Date.now();
    const event = newEvent('treasure.claimed', { huntId: 'h1', playerId: 'p1', payload: { treasureId: 't1', points: 50 } });
    expect(event.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(event).toMatchObject({ type: 'treasure.claimed', schemaVersion: 1, payload: { treasureId: 't1', points: 50 } });
    expect(Date.parse(event.occurredAt)).toBeGreaterThanOrEqual(before);
    expect(classifyRecord(Buffer.from(JSON.stringify(event)), new Date()).ok).toBe(true);
  });

  it('keeps a given eventId and occurredAt', () => {
    const event = newEvent('player.left', {
      huntId: 'h1',
      playerId: 'p1',
      payload: {},
      eventId: 'retry-safe-id',
      occurredAt: new Date(T0_MS),
    });
    expect(event).toEqual({
      eventId: 'retry-safe-id',
      type: 'player.left',
      schemaVersion: 1,
      huntId: 'h1',
      playerId: 'p1',
      occurredAt: '2026-11-22T10:00:00.000Z',
      payload: {},
    });
  });
});
