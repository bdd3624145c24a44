/**
 * The consumer's partition positions in Postgres: written in the same transaction as the
 * events they cover, read on partition assignment. Never moves backwards, so a zombie
 * consumer finishing a stale batch cannot rewind the group, except by rewindOffset when the
 * log itself went back (the topic recreated, or its log truncated).
 */
import type pg from 'pg';

export interface PartitionOffset {
  topic: string;
  partition: number;
  /** The next offset to read (last processed + 1). */
  nextOffset: bigint;
  /**
   * A position Postgres is known to hold at least (the writer loaded it, or committed it):
   * a stored position below it means Postgres lost commits, and the write is refused
   * (StoredPositionsWentBack).
   */
  floor?: bigint;
}

/**
 * Postgres holds positions behind what the writer had loaded or committed: it lost commits
 * (a failover to a replica that was behind, a restore to an earlier point). Writing on from
 * the writer's positions would pass over the records of the commits it lost, for good.
 */
export class StoredPositionsWentBack extends Error {
  constructor(readonly partitions: readonly { topic: string; partition: number; stored: bigint | undefined; floor: bigint }[]) {
    super(
      `Postgres holds positions behind what this consumer loaded or committed (${partitions
        .map((p) => `${p.topic}/${p.partition}: ${p.stored ?? 'none'} < ${p.floor}`)
        .join(', ')}): it lost commits (a failover to a replica that was behind, or a restore)`,
    );
    this.name = 'StoredPositionsWentBack';
  }
}

/**
 * Moves the positions forward (never back), in the caller's transaction; throws
 * StoredPositionsWentBack, writing nothing, when a stored position lies below its floor.
 */
export async function storeOffsets(client: pg.ClientBase, groupId: string, offsets: readonly PartitionOffset[]): Promise<void> {
  if (offsets.length === 0) return;
  const { rows } = await client.query<{ topic: string; partition: number; stored: string | null; floor: string }>({
    name: 'store-offsets-above-floor',
    text: `WITH input AS (
             SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS i(topic, partition, next_offset, floor)
           ), behind AS (
             SELECT i.topic, i.partition, c.next_offset AS stored, i.floor FROM input i
               LEFT JOIN consumer_offsets c ON c.group_id = $1 AND c.topic = i.topic AND c.partition = i.partition
              WHERE i.floor IS NOT NULL AND (c.next_offset IS NULL OR c.next_offset < i.floor)
           ), stored AS (
             INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
             SELECT $1, topic, partition, next_offset FROM input WHERE NOT EXISTS (SELECT 1 FROM behind)
             ON CONFLICT (group_id, topic, partition) DO UPDATE
               SET next_offset = GREATEST(consumer_offsets.next_offset, excluded.next_offset), updated_at = now()
           )
           SELECT topic, partition, stored::text, floor::text FROM behind`,
    values: [
      groupId,
      offsets.map((o) => o.topic),
      offsets.map((o) => o.partition),
      offsets.map((o) => o.nextOffset.toString()),
      offsets.map((o) => o.floor?.toString() ?? null),
    ],
  });
  if (rows.length > 0) {
    throw new StoredPositionsWentBack(rows.map((r) => ({ topic: r.topic, partition: r.partition, stored: r.stored === null ? undefined : BigInt(r.stored), floor: BigInt(r.floor) })));
  }
}

/**
 * Positions that move nothing but still have their floors checked, for a transaction that
 * commits part of a micro-batch before the part that stores its offsets: written with
 * storeOffsets, it too writes nothing once Postgres has lost commits. Each is its floor, at
 * or below the stored position when the check passes, so GREATEST keeps the stored one;
 * a partition without a floor has nothing to check and is left out.
 */
export function floorsOnly(offsets: readonly PartitionOffset[]): PartitionOffset[] {
  return offsets.flatMap((o) => (o.floor === undefined ? [] : [{ ...o, nextOffset: o.floor }]));
}

/**
 * Sets a partition's position where nothing has been read yet (its configured start), and
 * remembers it as that: a later join has no applied record before it to check. A position
 * another member stored meanwhile wins, whatever it is (the caller reads it back):
 * - a start, nothing read since (two members of a new group starting at once, each finding
 *   the log's end at its own moment): the first one stays a start. Moved on alone, the
 *   position would lie after a record never applied, which the next join reads as a log
 *   replaced under it; moved on as a start, it would pass over records its owner may have
 *   applied in part, and a later owner would skip the rest;
 * - a position records were read to: moved on to this start, the records between, not read
 *   yet, would be skipped.
 */
export async function storeStartOffset(client: pg.ClientBase, groupId: string, start: PartitionOffset): Promise<void> {
  await client.query(
    `INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, start_offset) VALUES ($1, $2, $3, $4, $4)
     ON CONFLICT (group_id, topic, partition) DO NOTHING`,
    [groupId, start.topic, start.partition, start.nextOffset.toString()],
  );
}

/**
 * The stored positions, and which of them are where their partition started with nothing
 * read since (storeStartOffset), read together: a commit landing between two reads would
 * make a start look like a position after an applied record.
 */
export async function loadJoinPositions(pool: pg.Pool | pg.ClientBase, groupId: string, topic: string): Promise<{ stored: Map<number, bigint>; unreadStarts: Set<number> }> {
  const { rows } = await pool.query<{ partition: number; next_offset: string | number; unread: boolean | null }>(
    'SELECT partition, next_offset, next_offset = start_offset AS unread FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
    [groupId, topic],
  );
  return {
    stored: new Map(rows.map((r) => [r.partition, BigInt(r.next_offset)])),
    unreadStarts: new Set(rows.filter((r) => r.unread === true).map((r) => r.partition)),
  };
}

/**
 * The stored positions, and whether a standby served them (in recovery: read-only, and maybe
 * behind the primary that took the commits). During a failover, or with routing that lags
 * one, a connection can reach a standby for a while: its positions may be behind what this
 * process committed without anything being lost.
 */
export async function loadOffsetsAsServed(pool: pg.Pool | pg.ClientBase, groupId: string, topic: string): Promise<{ offsets: Map<number, bigint>; fromStandby: boolean }> {
  const { rows } = await pool.query<{ standby: boolean; partition: number | null; next_offset: string | number | null }>(
    `SELECT r.standby, o.partition, o.next_offset
       FROM (SELECT pg_is_in_recovery() AS standby) r
       LEFT JOIN consumer_offsets o ON o.group_id = $1 AND o.topic = $2`,
    [groupId, topic],
  );
  const offsets = new Map(rows.filter((r) => r.partition !== null).map((r) => [r.partition as number, BigInt(r.next_offset as string | number)]));
  return { offsets, fromStandby: rows[0]?.standby === true };
}

export async function loadOffsets(pool: pg.Pool | pg.ClientBase, groupId: string, topic: string): Promise<Map<number, bigint>> {
  return (await loadOffsetsAsServed(pool, groupId, topic)).offsets;
}

/**
 * Moves a partition's stored position back to `offset`, but only while it still lies past
 * `logEnd`: the log now ends before it. Resolves true when it moved.
 */
export async function rewindOffset(
  client: pg.ClientBase,
  groupId: string,
  target: PartitionOffset,
  logEnd: bigint,
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE consumer_offsets SET next_offset = $4, updated_at = now()
      WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset > $5`,
    [groupId, target.topic, target.partition, target.nextOffset.toString(), logEnd.toString()],
  );
  return (rowCount ?? 0) > 0;
}
