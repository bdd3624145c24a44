-- Rollups: per hunt, per minute and per hour, aggregated from the raw event store by the
-- rollupFlush job. A late event re-aggregates the windows it falls in, from raw events, so
-- every column (distinct players included) is exact, not an increment.
CREATE TABLE rollup_minute (
  hunt_id          text COLLATE "C" NOT NULL,
  window_start     timestamptz NOT NULL,
  events           integer NOT NULL,
  players          integer NOT NULL,
  clues_found      integer NOT NULL,
  clue_points      bigint  NOT NULL,
  hints_used       integer NOT NULL,
  hint_penalties   bigint  NOT NULL,
  treasure_claims  integer NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (hunt_id, window_start)
);

CREATE TABLE rollup_hour (LIKE rollup_minute INCLUDING ALL);

-- How far (by events.seq) each batch job has read the raw store. The rollup watermark
-- advances in the same transaction as the rollup rows it covers.
CREATE TABLE job_watermarks (
  job          text PRIMARY KEY,
  last_seq     bigint NOT NULL DEFAULT 0,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
