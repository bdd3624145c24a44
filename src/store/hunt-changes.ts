/**
 * The change feed of committed hunts: every transaction that changes a hunt's projections
 * sends `NOTIFY hunt_changes` with the hunt ids, and Postgres delivers it only when (and
 * if) the transaction commits. Live leaderboard streams listen on one connection per
 * process, whoever the writer is: ingest lanes, backfills, replays, repairs.
 */
import type pg from 'pg';

export const HUNT_CHANGES_CHANNEL = 'hunt_changes';
/** A payload naming every hunt: used when the list would not fit, and for wholesale changes (a reprocess swap). */
export const ALL_HUNTS = '*';
/** NOTIFY payloads must stay under 8000 bytes. */
const MAX_PAYLOAD = 7000;

/** The payload naming `huntIds` (comma-separated: ids cannot contain commas), or ALL_HUNTS. */
export function changePayload(huntIds: readonly string[]): string {
  const list = huntIds.join(',');
  return list.length > MAX_PAYLOAD ? ALL_HUNTS : list;
}

/** SQL for a statement's select list: notifies the hunts of `new` rows (alias of a CTE with hunt_id). */
export const NOTIFY_HUNTS_OF = (cte: string) =>
  `(SELECT pg_notify('${HUNT_CHANGES_CHANNEL}', CASE WHEN length(l) > ${MAX_PAYLOAD} THEN '${ALL_HUNTS}' ELSE l END)
      FROM (SELECT string_agg(DISTINCT hunt_id, ',') AS l FROM ${cte}) x WHERE l IS NOT NULL)`;

/** Notifies in the caller's transaction (delivered on commit). */
export async function notifyHuntsChanged(client: pg.ClientBase, huntIds: readonly string[] | typeof ALL_HUNTS): Promise<void> {
  const payload = huntIds === ALL_HUNTS ? ALL_HUNTS : changePayload(huntIds);
  if (payload === '') return;
  await client.query('SELECT pg_notify($1, $2)', [HUNT_CHANGES_CHANNEL, payload]);
}

/**
 * The share (0-1) of the cluster's notification queue in use. Every commit of the hot path
 * notifies; a listening session that stops reading (a frozen process, a paused container)
 * holds every notification since in the queue (8 GB on disk), and once it is full every
 * NOTIFY, so every commit, fails: the stream stops.
 */
export async function notificationQueueUsage(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ usage: number }>('SELECT pg_notification_queue_usage() AS usage');
  return Number(rows[0]?.usage ?? 0);
}

/** Subscribes `client` to the change feed: its 'notification' events then carry the payloads. */
export async function listenForHuntChanges(client: pg.ClientBase): Promise<void> {
  await client.query(`LISTEN ${HUNT_CHANGES_CHANNEL}`);
}

/**
 * The change feed's liveness check (api/change-listener.ts): `listenForChecks` subscribes
 * `client` to a channel of its own, and `sendCheck` notifies it, which the client must hear.
 */
export async function listenForChecks(client: pg.ClientBase, channel: string): Promise<void> {
  await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
}

export async function sendCheck(client: pg.ClientBase, channel: string, token: string): Promise<void> {
  await client.query('SELECT pg_notify($1, $2)', [channel, token]);
}

/** The hunts a payload names, or ALL_HUNTS. */
export function parseChangePayload(payload: string | undefined): string[] | typeof ALL_HUNTS {
  if (!payload || payload === ALL_HUNTS) return ALL_HUNTS;
  return payload.split(',');
}
