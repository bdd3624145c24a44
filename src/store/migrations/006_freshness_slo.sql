-- The hot path's freshness, counted per minute for `hunt slo`: how many events each ingest
-- process committed in a minute and how many of them within the freshness target of their
-- Kafka timestamp. Processes add their counts every few seconds (not per event, not in the
-- micro-batch transaction), so concurrent writers only ever increment.
CREATE TABLE freshness_minutes (
  minute          timestamptz NOT NULL,
  target_ms       integer     NOT NULL CHECK (target_ms > 0),
  events          bigint      NOT NULL CHECK (events >= 0),
  within_target   bigint      NOT NULL CHECK (within_target >= 0 AND within_target <= events),
  PRIMARY KEY (minute, target_ms),
  CHECK (minute = date_trunc('minute', minute))
);
