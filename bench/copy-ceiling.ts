/**
 * Ceiling 2: Postgres COPY of the very rows our drain stored (dumped from its events table
 * with COPY TO into a file first, so reading them costs nothing measurable), into the events
 * table of a fresh migrated database: same columns, same indexes, one COPY FROM STDIN, one
 * commit. That is as fast as one Postgres backend takes these rows in; it writes no
 * projections. A second COPY into an index-free copy of the table shows what the indexes cost.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';

const COLUMNS = 'event_id, hunt_id, player_id, type, occurred_at, payload, source';

export interface CopyResult {
  rows: number;
  bytes: number;
  seconds: number;
  rowsPerSecond: number;
  /** For reference: the same COPY into a copy of the table without its indexes and keys. */
  withoutIndexes: { seconds: number; rowsPerSecond: number };
}

export async function copyCeiling(sourceUrl: string, targetUrl: string): Promise<CopyResult> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-bench-')), 'events.copy');
  try {
    await withClient(sourceUrl, (client) =>
      pipeline(client.query(copyTo(`COPY (SELECT ${COLUMNS} FROM events ORDER BY seq) TO STDOUT`)), fs.createWriteStream(file)),
    );
    const bytes = fs.statSync(file).size;
    return await withClient(targetUrl, async (client) => {
      const indexed = await timedCopy(client, file, 'events');
      await client.query('CREATE TABLE events_bare (LIKE events INCLUDING DEFAULTS)');
      const bare = await timedCopy(client, file, 'events_bare');
      return {
        rows: indexed.rows,
        bytes,
        seconds: indexed.seconds,
        rowsPerSecond: Math.round(indexed.rows / indexed.seconds),
        withoutIndexes: { seconds: bare.seconds, rowsPerSecond: Math.round(bare.rows / bare.seconds) },
      };
    });
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

async function timedCopy(client: pg.Client, file: string, table: string): Promise<{ rows: number; seconds: number }> {
  const started = performance.now();
  const copy = client.query(copyFrom(`COPY ${table} (${COLUMNS}) FROM STDIN`));
  await pipeline(fs.createReadStream(file, { highWaterMark: 1 << 20 }), copy);
  return { rows: copy.rowCount, seconds: (performance.now() - started) / 1000 };
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
