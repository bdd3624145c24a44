/**
 * The rollup flush's bound: the last seq whose event has settled (stored longer ago than the
 * settle time), with the count of events the flush then takes, which is every event up to
 * the bound, settled or not: a transaction that waited on a hunt's fence draws its seqs after
 * one that began later, so a recent event can sit below an older one's seq.
 */
import { describe, expect, it } from 'vitest';
import { settledBound } from '../../src/store/batch/settled-seq';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();

describe('settledBound', () => {
  it('counts every event up to the bound, the ones below it stored too lately to settle too', async () => {
    // Seq 1 stored just now; seq 2 by a transaction that began a minute ago.
    await db.pool.query(
      `INSERT INTO events (seq, event_id, hunt_id, player_id, type, occurred_at, payload, source, ingested_at) VALUES
         (1, 'recent', 'h', 'p', 'player.left', now(), '{}', 'test', now()),
         (2, 'older', 'h', 'p', 'player.left', now(), '{}', 'test', now() - interval '1 minute')`,
    );
    expect(await settledBound(db.pool, 0, 2000)).toEqual({ toSeq: 2, events: 2 });
    // Nothing settled past seq 2: the bound stays, with nothing to take.
    expect(await settledBound(db.pool, 2, 2000)).toEqual({ toSeq: 2, events: 0 });
  });
});
