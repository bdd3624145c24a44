-- The reprocess job's record: one row per projection, naming the run that owns the shadow
-- tables and how far it got. Chunk cursors commit with the shadow rows they cover, so a
-- retried step resumes exactly; a second run takes the row over and the first one's next
-- step fails instead of writing into shadows it no longer owns.
CREATE TABLE reprocess_jobs (
  projection       text        PRIMARY KEY,
  -- `<workflowId>/<runId>` of the owning run.
  job_id           text        NOT NULL,
  phase            text        NOT NULL CHECK (phase IN ('preparing', 'filling', 'filled', 'swapped')),
  -- The fill reads events with seq <= started_seq; the shadows hold the final result of every
  -- event with seq <= covered_seq (catch-up merges move it on).
  started_seq      bigint,
  covered_seq      bigint,
  -- Last hunt filled (hunts are filled in byte order); NULL before the first chunk.
  fill_cursor      text COLLATE "C",
  hunts_total      integer     NOT NULL DEFAULT 0,
  hunts_done       integer     NOT NULL DEFAULT 0,
  -- Projection rows in the shadow tables.
  shadow_rows      bigint      NOT NULL DEFAULT 0,
  -- Events merged after the fill, and how many of them under the fence at the swap.
  events_caught_up bigint      NOT NULL DEFAULT 0,
  fenced_events    bigint,
  -- How long the swap held the fence, and the newest seq the swapped-in tables cover.
  fence_ms         integer,
  max_seq          bigint,
  started_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz
);
