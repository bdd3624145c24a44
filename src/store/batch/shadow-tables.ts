/**
 * Shadow tables: empty copies of live tables that a batch job fills off to the side, then
 * swaps in under the live names inside the caller's transaction (readers and writers see
 * the old table or the new one, never a mix). Used by reprocess.
 */
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import { copyAccessAndOptions, INDEX_DEFINITION } from './live-table-shape';

/**
 * Drops a leftover `shadow` (a crashed or superseded run's) and creates it empty, shaped like
 * `live`: columns, defaults, CHECK and NOT NULL constraints, and, unless `indexes` is
 * 'later', its indexes. With 'later', buildShadowIndexes adds them once the shadow is
 * filled: one sorted build per index costs about half of what keeping each up row by row
 * does (experiments §69).
 */
export async function recreateShadow(client: pg.ClientBase, live: string, shadow: string, indexes: 'now' | 'later' = 'now'): Promise<void> {
  await client.query(`DROP TABLE IF EXISTS ${escapeIdentifier(shadow)}`);
  // INCLUDING ALL: defaults, constraints and (now or later) indexes, so the swapped-in table is the same table.
  const excluding = indexes === 'later' ? ' EXCLUDING INDEXES' : '';
  await client.query(`CREATE TABLE ${escapeIdentifier(shadow)} (LIKE ${escapeIdentifier(live)} INCLUDING ALL${excluding})`);
}

/**
 * Gives `shadow` each index of `live` it lacks (compared by definition, as the swap matches
 * them, and counted: two of one definition are two), an index that backs a constraint
 * (primary key, unique, exclusion) as that constraint. Idempotent: a retry after some were
 * built builds the rest. A unique index that the shadow's rows break fails with Postgres's
 * unique violation.
 */
export async function buildShadowIndexes(client: pg.ClientBase, live: string, shadow: string): Promise<void> {
  const { rows } = await client.query<{ shape: string; constraint: string | null; definition: string }>(
    `SELECT ${INDEX_SHAPE} AS shape, pg_get_constraintdef(c.oid) AS constraint,
            ${INDEX_DEFINITION} AS definition
       FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x')
      WHERE i.indrelid = $1::regclass
      ORDER BY c.oid IS NULL, i.indexrelid`,
    [escapeIdentifier(live)],
  );
  const built = new Map<string, number>();
  for (const { shape } of await indexesOf(client, shadow)) built.set(shape, (built.get(shape) ?? 0) + 1);
  const table = escapeIdentifier(shadow);
  for (const index of rows) {
    const already = built.get(index.shape) ?? 0;
    built.set(index.shape, already - 1);
    if (already > 0) continue;
    if (index.constraint !== null) await client.query(`ALTER TABLE ${table} ADD ${index.constraint}`);
    else await client.query(`CREATE ${index.shape.startsWith('UNIQUE|') ? 'UNIQUE ' : ''}INDEX ON ${table} ${index.definition}`);
  }
}

/**
 * Drops `live` and renames `shadow` to it, then gives the shadow's indexes the live ones'
 * names (matched by definition), so the schema reads the same as before. Renaming a
 * constraint's index renames the constraint too. The shadow gets the live table's
 * privileges and storage options first. Takes ACCESS EXCLUSIVE locks on both.
 */
export async function swapInShadow(client: pg.ClientBase, live: string, shadow: string): Promise<void> {
  // Live names by shape, each given to one shadow index of that shape (two of one definition are two).
  const liveNames = new Map<string, string[]>();
  for (const index of await indexesOf(client, live)) liveNames.set(index.shape, [...(liveNames.get(index.shape) ?? []), index.name]);
  const shadowIndexes = await indexesOf(client, shadow);
  await copyAccessAndOptions(client, live, shadow);
  await client.query(`DROP TABLE ${escapeIdentifier(live)}`);
  await client.query(`ALTER TABLE ${escapeIdentifier(shadow)} RENAME TO ${escapeIdentifier(live)}`);
  for (const { shape, name } of shadowIndexes) {
    const original = liveNames.get(shape)?.shift();
    if (original && original !== name) await client.query(`ALTER INDEX ${escapeIdentifier(name)} RENAME TO ${escapeIdentifier(original)}`);
  }
}

/** An index's definition with its uniqueness, `UNIQUE|USING btree (...)` or `|USING ...`, over pg_index `i`. */
const INDEX_SHAPE = `CASE WHEN i.indisunique THEN 'UNIQUE' ELSE '' END || '|' || ${INDEX_DEFINITION}`;

/** The table's indexes, each with its name and shape (INDEX_SHAPE). */
async function indexesOf(client: pg.ClientBase, table: string): Promise<{ name: string; shape: string }[]> {
  const { rows } = await client.query<{ name: string; shape: string }>(
    `SELECT c.relname AS name, ${INDEX_SHAPE} AS shape
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1::regclass ORDER BY c.relname`,
    [escapeIdentifier(table)],
  );
  return rows;
}

/**
 * Objects outside `tables` that Postgres will not let `DROP TABLE` take away: views and
 * materialized views reading them, foreign keys pointing at them, functions taking their row
 * type. The swap drops each live table, so while any of these exist it fails every time
 * (2BP01). Each as Postgres names it, with the table it depends on. What a table owns (its
 * indexes, constraints, defaults) goes with it and is not listed.
 */
export async function objectsBlockingDrop(db: pg.ClientBase | pg.Pool, tables: readonly string[]): Promise<{ table: string; object: string }[]> {
  const { rows } = await db.query<{ table: string; object: string }>(
    `SELECT DISTINCT t.relname AS table,
            coalesce(view.name, pg_describe_object(d.classid, d.objid, 0)) AS object
       FROM unnest($1::text[]) AS u(name)
       JOIN pg_class t ON t.oid = u.name::regclass
       JOIN pg_depend d ON d.deptype = 'n'
        AND ((d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid) OR (d.refclassid = 'pg_type'::regclass AND d.refobjid = t.reltype))
       LEFT JOIN LATERAL (
         SELECT format('%s %s', CASE v.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, v.oid::regclass) AS name
           FROM pg_rewrite r JOIN pg_class v ON v.oid = r.ev_class
          WHERE d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
       ) view ON true
      WHERE NOT EXISTS (
        SELECT 1 FROM pg_depend own
         WHERE own.classid = d.classid AND own.objid = d.objid AND own.deptype IN ('a', 'i')
           AND own.refclassid = 'pg_class'::regclass AND own.refobjid = t.oid)
      ORDER BY 1, 2`,
    [tables.map((table) => escapeIdentifier(table))],
  );
  return rows;
}
