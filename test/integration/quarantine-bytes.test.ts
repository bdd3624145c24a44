/**
 * Rejects far larger than a producer can send: compressed records unpack past any limit
 * (1 MB of gzip can hold a hundred), and the hot path must still quarantine them and move on.
 * On the real Postgres: what is kept of each is bounded (classify.ts, MAX_KEPT_BYTES), the
 * detail says what was cut, and many of them in one micro-batch go in more than one INSERT
 * (quarantine.ts) in the same transaction as the offsets.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_IMPORT_REAL_PATH_BYTES } from '../../src/batch/backfill/import-file';
import { classifySlice, MAX_KEPT_BYTES } from '../../src/pipeline/classify';
import { commitMicroBatch } from '../../src/pipeline/commit';
import { MAX_BYTES_PER_INSERT, quarantineRecords } from '../../src/store/hot-path/quarantine';
import { withTransaction } from '../../src/store/transaction';
import { useTestDatabase } from '../helpers/database-fixture';

const db = useTestDatabase();
const UNPACKED_BYTES = 3 * 1024 * 1024;
const RECORDS = 20;

describe('rejects of records unpacked past any limit', () => {
  it('are quarantined with a bounded copy and a detail saying what was cut, with the offset, in one commit', async () => {
    const value = Buffer.alloc(UNPACKED_BYTES, 0x7b); // '{' repeated: too large long before it is parsed
    const records = Array.from({ length: RECORDS }, (_, i) => ({ offset: String(i), key: i === 0 ? Buffer.alloc(2 * MAX_KEPT_BYTES, 0x6b) : Buffer.from('hunt-1'), value, timestamp: '0' }));
    const slice = classifySlice('hunt.events', 0, records, new Date());
    expect(slice.rejected.map((r) => r.value?.length)).toEqual(records.map(() => MAX_KEPT_BYTES));
    // Counts the INSERT statements into quarantine, in Postgres itself.
    await db.pool.query(`CREATE TABLE quarantine_inserts (at timestamptz DEFAULT clock_timestamp())`);
    await db.pool.query(`CREATE FUNCTION count_quarantine_insert() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO quarantine_inserts DEFAULT VALUES; RETURN NULL; END $$`);
    await db.pool.query(`CREATE TRIGGER count_quarantine_insert AFTER INSERT ON quarantine FOR EACH STATEMENT EXECUTE FUNCTION count_quarantine_insert()`);

    await commitMicroBatch(db.pool, 'g', { rows: slice.rows, origins: slice.origins, rejected: slice.rejected, offsets: [{ topic: 'hunt.events', partition: 0, nextOffset: BigInt(RECORDS) }] });

    const { rows } = await db.pool.query<{ n: number; key_bytes: number; value_bytes: number; detail: string }>(
      `SELECT count(*)::int AS n, max(length(record_key))::int AS key_bytes, max(length(record_value))::int AS value_bytes,
              min(detail) FILTER (WHERE source_offset = 0) AS detail
         FROM quarantine WHERE reason = 'too_large'`,
    );
    expect(rows[0]).toEqual({
      n: RECORDS,
      key_bytes: MAX_KEPT_BYTES,
      value_bytes: MAX_KEPT_BYTES,
      detail: expect.stringMatching(new RegExp(`^key of ${2 * MAX_KEPT_BYTES} bytes, only its first ${MAX_KEPT_BYTES} kept; value of ${UNPACKED_BYTES} bytes, only its first ${MAX_KEPT_BYTES} kept; value is ${UNPACKED_BYTES} bytes`)),
    });
    // 21 MiB of record bytes kept: two INSERTs of at most MAX_BYTES_PER_INSERT (16 MiB) each.
    expect(MAX_BYTES_PER_INSERT).toBe(16 * 1024 * 1024);
    const statements = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM quarantine_inserts');
    expect(statements.rows[0]?.n).toBe(2);
    const offsets = await db.pool.query<{ next_offset: number }>(`SELECT next_offset FROM consumer_offsets WHERE group_id = 'g'`);
    expect(offsets.rows).toEqual([{ next_offset: RECORDS }]);
  });
});

describe('quarantine rows per position', () => {
  // Unique per position and the bytes kept (migration 008): a redelivered reject once, a
  // different record at a reused offset (a recreated topic) a row of its own, and a record
  // without a value apart from one with an empty value.
  it('keep a record once per position and bytes of key and value, telling no bytes from empty ones', async () => {
    const reject = (value: Buffer | null, key: Buffer | null = null) => ({ topic: 'per-position', partition: 0, offset: '7', key, value, reason: 'invalid_json' as const, detail: 'test' });
    const records = [
      reject(null),
      reject(Buffer.alloc(0)),
      reject(Buffer.from('old log')),
      reject(Buffer.from('new log')),
      // Tombstones of two logs at one offset, told apart by their keys alone.
      reject(null, Buffer.from('hunt-a')),
      reject(null, Buffer.from('hunt-b')),
      reject(null, Buffer.alloc(0)),
    ];
    await withTransaction(db.pool, (client) => quarantineRecords(client, records));
    await withTransaction(db.pool, (client) => quarantineRecords(client, records)); // delivered again: nothing new
    // And in one batch twice (one INSERT meeting a key twice would fail whole).
    await withTransaction(db.pool, (client) => quarantineRecords(client, [...records, ...records]));
    const { rows } = await db.pool.query<{ key: string | null; value: string | null }>(
      "SELECT encode(record_key, 'escape') AS key, encode(record_value, 'escape') AS value FROM quarantine WHERE source_topic = 'per-position' ORDER BY id",
    );
    expect(rows).toEqual([
      { key: null, value: null },
      { key: null, value: '' },
      { key: null, value: 'old log' },
      { key: null, value: 'new log' },
      { key: 'hunt-a', value: null },
      { key: 'hunt-b', value: null },
      { key: '', value: null },
    ]);
  });
});

describe('quarantine rows of a backfill file', () => {
  // A file's rejects are keyed by `file:<real path>`, one entry of a btree index (at most
  // 2,704 bytes): a path of hashed folder names compresses too little to fit past that.
  const fileSource = (bytes: number) => `file:/${randomBytes(bytes).toString('hex').slice(0, bytes - 6)}`;
  const reject = (topic: string) => ({ topic, partition: 0, offset: '1', key: null, value: Buffer.from('{'), reason: 'invalid_json' as const, detail: 'test' });

  it('fit the index for every real path the import check lets through', async () => {
    const longest = fileSource(MAX_IMPORT_REAL_PATH_BYTES + 'file:'.length);
    await withTransaction(db.pool, (client) => quarantineRecords(client, [reject(longest)]));
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM quarantine WHERE source_topic = $1', [longest]);
    expect(rows[0]?.n).toBe(1);
  });

  it('would not fit for a path well past the cap, which is why the import check has it', async () => {
    await expect(withTransaction(db.pool, (client) => quarantineRecords(client, [reject(fileSource(3000))]))).rejects.toMatchObject({ code: '54000' });
  });
});
