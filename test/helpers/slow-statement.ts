import type pg from 'pg';

export interface SlowOnce {
  /** True once the slow statement has run (the trigger disarmed itself). */
  fired(): Promise<boolean>;
  /** Takes the trigger away (for a database other tests go on using). */
  remove(): Promise<void>;
}

/**
 * Makes the next statement that stores events take `seconds` longer, once: a commit slower
 * than a timeout under test (a heartbeat's, a group session's), on the real Postgres.
 */
export async function slowNextEventInsert(pool: pg.Pool, seconds: number): Promise<SlowOnce> {
  await pool.query(`
    CREATE TABLE slow_once (armed boolean);
    INSERT INTO slow_once VALUES (true);
    CREATE FUNCTION slow_once() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE fired boolean;
    BEGIN
      DELETE FROM slow_once RETURNING armed INTO fired;
      IF fired THEN PERFORM pg_sleep(${Number(seconds)}); END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER slow_once AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION slow_once();`);
  return {
    fired: async () => (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM slow_once')).rows[0]?.n === 0,
    remove: async () => void (await pool.query('DROP TRIGGER slow_once ON events; DROP FUNCTION slow_once(); DROP TABLE slow_once')),
  };
}
