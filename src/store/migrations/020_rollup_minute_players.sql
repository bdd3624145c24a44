-- Which players had events in each hunt-minute, as 011 keeps them per hunt-hour. With it, a
-- flush adds its new events to the minute rows they fall in, and no longer re-aggregates each
-- touched minute from all its raw events: that made every chunk cost what its minutes held
-- so far (about a second per million events here, chunk after chunk), so a hunt taking tens of
-- thousands of events a second outran its rollups, and a minute holding tens of millions (a
-- client with a frozen clock) failed every chunk that touched it, down to one event, which
-- stopped the rollups of every hunt.
--
-- A minute row is now a sum over the events the watermark covers, players counted as they
-- are first noted here, so it must count exactly those events. A flush before this migration
-- aggregated a minute from every event committed at the time, past its watermark too, and
-- the next flush would add those again. So the minutes holding events past the watermark are
-- rewritten here from the events it covers (their hours are rewritten from their minutes by
-- the flush that takes those events), and the players are noted from the events it covers.
--
-- Not marked compatible with older versions: an older worker's flush writes minutes from all
-- their raw events, past the watermark too, which the next flush of a new one adds again.
--
-- The counts are bigint now, as the sums were: summed by flush after flush, a minute that a
-- client with a frozen clock keeps filling passes 2^31 events in hours at full rate, and an
-- integer column then fails every chunk that touches it (22003), for every hunt.
--
-- Upgrading: the fill reads every stored event once (about a second per million here), and
-- the rollup tables are rewritten for the wider columns; a flush waits for it (the
-- watermark's row is held to the end).
ALTER TABLE rollup_minute ALTER COLUMN events TYPE bigint, ALTER COLUMN players TYPE bigint, ALTER COLUMN clues_found TYPE bigint,
  ALTER COLUMN hints_used TYPE bigint, ALTER COLUMN treasure_claims TYPE bigint;
ALTER TABLE rollup_hour ALTER COLUMN events TYPE bigint, ALTER COLUMN players TYPE bigint, ALTER COLUMN clues_found TYPE bigint,
  ALTER COLUMN hints_used TYPE bigint, ALTER COLUMN treasure_claims TYPE bigint;

CREATE TABLE rollup_minute_players (
  hunt_id      text COLLATE "C" NOT NULL,
  window_start timestamptz NOT NULL,
  player_id    text COLLATE "C" NOT NULL,
  PRIMARY KEY (hunt_id, window_start, player_id)
);

INSERT INTO job_watermarks (job) VALUES ('rollupFlush') ON CONFLICT (job) DO NOTHING;
SELECT last_seq FROM job_watermarks WHERE job = 'rollupFlush' FOR UPDATE;

INSERT INTO rollup_minute_players (hunt_id, window_start, player_id)
SELECT DISTINCT hunt_id, date_trunc('minute', occurred_at, 'UTC'), player_id FROM events
 WHERE seq <= (SELECT last_seq FROM job_watermarks WHERE job = 'rollupFlush');

CREATE TEMP TABLE minutes_past_the_watermark ON COMMIT DROP AS
SELECT DISTINCT hunt_id, date_trunc('minute', occurred_at, 'UTC') AS window_start FROM events
 WHERE seq > (SELECT last_seq FROM job_watermarks WHERE job = 'rollupFlush');

DELETE FROM rollup_minute r USING minutes_past_the_watermark m
 WHERE r.hunt_id = m.hunt_id AND r.window_start = m.window_start;

INSERT INTO rollup_minute (hunt_id, window_start, events, players, clues_found, clue_points, hints_used, hint_penalties, treasure_claims)
SELECT m.hunt_id, m.window_start, count(*), count(DISTINCT e.player_id),
       count(*) FILTER (WHERE e.type = 'clue.found'),
       coalesce(sum((e.payload->>'points')::int) FILTER (WHERE e.type = 'clue.found'), 0),
       count(*) FILTER (WHERE e.type = 'hint.used'),
       coalesce(sum((e.payload->>'penalty')::int) FILTER (WHERE e.type = 'hint.used'), 0),
       count(*) FILTER (WHERE e.type = 'treasure.claimed')
  FROM minutes_past_the_watermark m
  JOIN events e ON e.hunt_id = m.hunt_id AND e.occurred_at >= m.window_start AND e.occurred_at < m.window_start + interval '1 minute'
 WHERE e.seq <= (SELECT last_seq FROM job_watermarks WHERE job = 'rollupFlush')
 GROUP BY m.hunt_id, m.window_start;
