/**
 * What a retried backfill step asks of the raw store: which of a chunk's events it stored
 * itself before. Each stored event keeps its source, and a backfill's source names the job and
 * the record (`backfill:<job>:<line>`, `backfill:<job>:<topic>:<partition>:<offset>`), so an
 * event stored under this very record's source was inserted by an earlier attempt of the same
 * job (one that died after committing, before its heartbeat said so): it counts as inserted,
 * not as a duplicate.
 */
import type pg from 'pg';
import type { EventRows } from '../hot-path/event-rows';

/** How many of the rows are stored under their own eventId and source. */
export async function countStoredAsThemselves(pool: pg.Pool, rows: readonly EventRows[]): Promise<number> {
  const json = `[${rows.filter((r) => r.ends.length > 0).map((r) => r.json).join(',')}]`;
  if (json === '[]') return 0;
  const { rows: found } = await pool.query<{ n: number }>({
    name: 'count-stored-as-themselves',
    text: `SELECT count(*)::int AS n
             FROM json_to_recordset($1::json) AS r(e text, src text)
             JOIN events ON events.event_id = r.e AND events.source = r.src`,
    values: [json],
  });
  return found[0]?.n ?? 0;
}
