/**
 * What a swap of shadow tables (shadow-tables.ts) must not lose. The swap drops each live
 * table and renames its copy in, and the copy was made at the job's start (`LIKE ...
 * INCLUDING ALL`): columns, defaults, constraints and indexes, nothing else (a reprocess
 * copy gets its indexes at the fill's end, from the live table as it is then). So:
 * - a change made to a live table since (a migration of a rolling upgrade, an index or a
 *   CHECK an operator added) would be undone, with `schema_migrations` still listing it:
 *   shapeChanges finds it, and the job must start again;
 * - what `LIKE` never copies (privileges, storage options, a FULL or NOTHING replica
 *   identity) is copied at the swap (copyAccessAndOptions);
 * - what is not copied (triggers, row security, publication membership, column privileges,
 *   foreign keys to other tables, an index's replica identity) or would make the drop fail (another owner) is named up front
 *   (attachmentsTheSwapWouldLose), so the job fails once, clearly, instead of dropping it
 *   without a word (change-data capture to a warehouse would stop, an audit trigger vanish).
 */
import type pg from 'pg';
import { escapeIdentifier } from 'pg';

/** An index's definition without its name and table (`USING btree (...)`), over pg_index `i`. */
export const INDEX_DEFINITION = `regexp_replace(pg_get_indexdef(i.indexrelid), '^.*? ON \\S+ ', '')`;

/** The table's columns, CHECK constraints and indexes, each as one comparable line. */
async function shapeOf(db: pg.ClientBase | pg.Pool, table: string): Promise<Set<string>> {
  const regclass = escapeIdentifier(table);
  const { rows } = await db.query<{ line: string }>(
    `SELECT format('column %s %s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                   CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                   coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')) AS line
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
     UNION ALL
     -- Without NOT VALID: LIKE copies a check as valid (Postgres 15-17), and one added NOT
     -- VALID (the usual way on a big table) would differ from its copy for every run.
     SELECT 'check ' || regexp_replace(pg_get_constraintdef(c.oid), ' NOT VALID$', '') FROM pg_constraint c WHERE c.conrelid = $1::regclass AND c.contype = 'c'
     UNION ALL
     SELECT CASE WHEN i.indisunique THEN 'unique index ' ELSE 'index ' END || ${INDEX_DEFINITION}
       FROM pg_index i WHERE i.indrelid = $1::regclass`,
    [regclass],
  );
  return new Set(rows.map((r) => r.line));
}

/** How `live` differs from `shadow` (made from it by LIKE): lines only one of them has, empty when none. */
export async function shapeChanges(db: pg.ClientBase | pg.Pool, live: string, shadow: string): Promise<string[]> {
  const [now, then] = await Promise.all([shapeOf(db, live), shapeOf(db, shadow)]);
  return [...[...now].filter((line) => !then.has(line)).map((line) => `${line} (added)`), ...[...then].filter((line) => !now.has(line)).map((line) => `${line} (removed)`)];
}

/** What the swap would take away from `tables` and cannot put back, each named with its table. */
export async function attachmentsTheSwapWouldLose(db: pg.ClientBase | pg.Pool, tables: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ what: string }>(
    `WITH t AS (SELECT u.name::regclass AS oid, u.name FROM unnest($1::text[]) AS u(name))
     SELECT format('trigger %s on table %s', g.tgname, t.oid::regclass) AS what FROM t JOIN pg_trigger g ON g.tgrelid = t.oid AND NOT g.tgisinternal
     UNION ALL
     SELECT format('row security (policy %s) on table %s', p.polname, t.oid::regclass) FROM t JOIN pg_policy p ON p.polrelid = t.oid
     UNION ALL
     SELECT format('row security enabled on table %s', t.oid::regclass) FROM t JOIN pg_class c ON c.oid = t.oid WHERE c.relrowsecurity
     UNION ALL
     SELECT format('publication %s lists table %s', b.pubname, t.oid::regclass) FROM t JOIN pg_publication_rel r ON r.prrelid = t.oid JOIN pg_publication b ON b.oid = r.prpubid
     UNION ALL
     SELECT format('privileges on columns of table %s', t.oid::regclass) FROM t
      WHERE EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND a.attacl IS NOT NULL)
     UNION ALL
     -- LIKE never copies a foreign key, and DROP TABLE takes it with the table.
     SELECT format('foreign key %s of table %s', k.conname, t.oid::regclass) FROM t JOIN pg_constraint k ON k.conrelid = t.oid AND k.contype = 'f'
     UNION ALL
     SELECT format('replica identity using an index on table %s', t.oid::regclass) FROM t JOIN pg_class c ON c.oid = t.oid WHERE c.relreplident = 'i'
     UNION ALL
     SELECT format('table %s is owned by role %s, not by %s (the role reprocess runs as)', t.oid::regclass, pg_get_userbyid(c.relowner), current_user)
       FROM t JOIN pg_class c ON c.oid = t.oid WHERE c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
     ORDER BY 1`,
    [tables.map((table) => escapeIdentifier(table))],
  );
  return rows.map((r) => r.what);
}

/**
 * Gives `shadow` the privileges others hold on `live` (a dashboard's read-only role, say)
 * and its storage options (fillfactor, autovacuum settings), which LIKE does not copy. The
 * owner's own privileges come with ownership.
 */
export async function copyAccessAndOptions(client: pg.ClientBase, live: string, shadow: string): Promise<void> {
  const { rows: grants } = await client.query<{ grantee: string | null; privilege: string; grantable: boolean }>(
    `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable AS grantable
       FROM pg_class c, aclexplode(c.relacl) a
      WHERE c.oid = $1::regclass AND a.grantee <> c.relowner`,
    [escapeIdentifier(live)],
  );
  for (const g of grants) {
    const to = g.grantee === null ? 'PUBLIC' : escapeIdentifier(g.grantee);
    await client.query(`GRANT ${g.privilege} ON ${escapeIdentifier(shadow)} TO ${to}${g.grantable ? ' WITH GRANT OPTION' : ''}`);
  }
  const { rows } = await client.query<{ options: string[] | null; identity: string }>(
    'SELECT reloptions AS options, relreplident AS identity FROM pg_class WHERE oid = $1::regclass',
    [escapeIdentifier(live)],
  );
  const options = rows[0]?.options ?? [];
  if (options.length > 0) await client.query(`ALTER TABLE ${escapeIdentifier(shadow)} SET (${options.join(', ')})`);
  // What change-data capture reads from updates and deletes (an index's is refused up front).
  const identity = { f: 'FULL', n: 'NOTHING' }[rows[0]?.identity ?? 'd'];
  if (identity) await client.query(`ALTER TABLE ${escapeIdentifier(shadow)} REPLICA IDENTITY ${identity}`);
}
