/**
 * hunt_store_notify_queue_usage on the real Postgres: every commit of the hot path notifies,
 * and a listening session that stops reading holds every notification since in the cluster's
 * queue; once that is full, every commit fails. The gauge must rise while one is held.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { storeGaugeValue } from '../helpers/store-gauges';

const db = useTestDatabase();

const queueUsage = () => storeGaugeValue(db.pool, 'hunt_store_notify_queue_usage');

describe('hunt_store_notify_queue_usage', () => {
  it('rises while a listening session holds notifications unread, and falls once it reads them', async () => {
    const channel = `held_${process.pid}`;
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    try {
      await listener.query(`LISTEN ${channel}`);
      // Inside a transaction a session takes no notifications: as a frozen process would, it
      // holds the queue's tail where it is.
      await listener.query('BEGIN');
      const before = await queueUsage();
      expect(before).toBeDefined();
      // About 20 MB of notifications, each in its own transaction (one queue entry each).
      const payload = 'x'.repeat(7000);
      for (let i = 0; i < 3000; i++) await db.pool.query('SELECT pg_notify($1, $2)', [channel, `${i}:${payload}`]);
      const held = (await queueUsage()) as number;
      expect(held).toBeGreaterThan(before as number);
      expect(held).toBeGreaterThan(0.001); // 20 MB of the queue's 8 GB
      await listener.query('COMMIT'); // it reads them now
      await new Promise((resolve) => setTimeout(resolve, 500));
      await db.pool.query('SELECT pg_notify($1, $2)', [channel, 'after']); // moves the queue's tail on
      expect(await queueUsage()).toBeLessThan(held);
    } finally {
      await listener.end();
    }
  });
});
