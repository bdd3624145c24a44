-- Which players had events in each hunt-hour: the one column of an hour's rollup that the
-- minute rows cannot give (distinct players do not add up). With it, a flush writes an hour
-- window from its minute rows and this table's count, and no longer re-reads every raw event
-- of the hour: that made each flush of a busy hour cost what the hour held so far (about a
-- second per million events), chunk after chunk, so at a few thousand events a second the
-- runs of the hour's last minutes outlasted the one-minute schedule.
-- Filled here from the events stored so far; then by every flush, for its new events.
--
-- Upgrading: the fill reads every stored event once (about a second per million here).
CREATE TABLE rollup_hour_players (
  hunt_id      text COLLATE "C" NOT NULL,
  window_start timestamptz NOT NULL,
  player_id    text COLLATE "C" NOT NULL,
  PRIMARY KEY (hunt_id, window_start, player_id)
);

INSERT INTO rollup_hour_players (hunt_id, window_start, player_id)
SELECT DISTINCT hunt_id, date_trunc('hour', occurred_at, 'UTC'), player_id FROM events;
