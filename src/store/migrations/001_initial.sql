-- Initial schema: the raw event store, the projections the read API serves, the consumer's
-- partition offsets (the truth for where ingestion resumes) and the quarantine of rejects.
-- Ids use the "C" collation: the contract orders and breaks ties by byte order, whatever
-- the database's default collation.

-- Raw event store: append-only, one row per accepted eventId (the idempotency key).
-- seq is the ingest order, the cursor batch jobs read by.
CREATE TABLE events (
  seq          bigserial   NOT NULL UNIQUE,
  event_id     text COLLATE "C"        PRIMARY KEY,
  hunt_id      text COLLATE "C"        NOT NULL,
  player_id    text COLLATE "C"        NOT NULL,
  type         text        NOT NULL,
  occurred_at  timestamptz NOT NULL,
  payload      jsonb       NOT NULL,
  -- Where the event came from: a Kafka topic/partition/offset, a backfill, a DLQ replay.
  source       text        NOT NULL,
  ingested_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_hunt_time ON events (hunt_id, occurred_at, event_id);

-- One row per hunt. Besides stats, it is the per-hunt fence: the hot path and repairs both
-- lock a hunt's row, so a repair never interleaves with an increment (DESIGN invariant 6).
CREATE TABLE hunts (
  hunt_id         text COLLATE "C"        PRIMARY KEY,
  events_applied  bigint      NOT NULL DEFAULT 0,
  -- occurred_at of the newest applied event: the read API's asOf.
  as_of           timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The leaderboard projection: one row per player per hunt.
CREATE TABLE player_scores (
  hunt_id            text COLLATE "C"    NOT NULL,
  player_id          text COLLATE "C"    NOT NULL,
  score              bigint  NOT NULL DEFAULT 0,
  clues_found        integer NOT NULL DEFAULT 0,
  treasures_claimed  integer NOT NULL DEFAULT 0,
  display_name       text,
  -- (occurred_at, event_id) of the player.joined that set display_name.
  display_name_at    timestamptz,
  display_name_event text COLLATE "C",
  active             boolean NOT NULL DEFAULT true,
  -- (occurred_at, event_id) of the joined/left event that decided `active`.
  active_at          timestamptz,
  active_event       text COLLATE "C",
  PRIMARY KEY (hunt_id, player_id)
);
CREATE INDEX player_scores_leaderboard ON player_scores (hunt_id, score DESC, player_id);

-- Which event credited each (player, clue): kind 'found' (+points) or 'hint' (-penalty).
CREATE TABLE clue_credits (
  hunt_id      text COLLATE "C"        NOT NULL,
  player_id    text COLLATE "C"        NOT NULL,
  clue_id      text COLLATE "C"        NOT NULL,
  kind         text        NOT NULL CHECK (kind IN ('found', 'hint')),
  event_id     text COLLATE "C"        NOT NULL,
  occurred_at  timestamptz NOT NULL,
  points       integer     NOT NULL,
  PRIMARY KEY (hunt_id, player_id, clue_id, kind)
);

-- One winner per treasure per hunt.
CREATE TABLE treasure_winners (
  hunt_id      text COLLATE "C"        NOT NULL,
  treasure_id  text COLLATE "C"        NOT NULL,
  player_id    text COLLATE "C"        NOT NULL,
  event_id     text COLLATE "C"        NOT NULL,
  occurred_at  timestamptz NOT NULL,
  points       integer     NOT NULL,
  PRIMARY KEY (hunt_id, treasure_id)
);

-- The consumer's position: the next offset to read per group, topic and partition. Written
-- in the same transaction as the events it covers; Kafka's committed offsets are a hint only.
CREATE TABLE consumer_offsets (
  group_id     text        NOT NULL,
  topic        text        NOT NULL,
  partition    integer     NOT NULL,
  next_offset  bigint      NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, partition)
);

-- Rejected records, kept byte for byte with the reason, so nothing read is ever lost.
CREATE TABLE quarantine (
  id               bigserial   PRIMARY KEY,
  source_topic     text        NOT NULL,
  source_partition integer     NOT NULL,
  source_offset    bigint      NOT NULL,
  record_key       bytea,
  record_value     bytea,
  reason           text        NOT NULL,
  detail           text        NOT NULL,
  quarantined_at   timestamptz NOT NULL DEFAULT now(),
  -- Set by dlqReplay once the record has been re-validated and ingested.
  replayed_at      timestamptz,
  replayed_event_id text,
  UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX quarantine_reason ON quarantine (reason, quarantined_at) WHERE replayed_at IS NULL;
