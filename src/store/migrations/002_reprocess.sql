-- The reprocess job's record: one row per projection, naming the run that owns the shadow
-- tables and how far it got. Chunk cursors commit with the shadow rows they cover, so a
-- retried step resumes exactly; a second run takes the row over and the first one's next
-- step fails instead of writing into shadows it no longer owns.
CREATE TABLE reprocess_jobs (
  projection       text        PRIMARY KEY,
  -- `<workflowId>/<runId>` of the owning run.
  job_id           text        NOT NULL,
  phase            text        NOT NULL CHECK (phase IN ('preparing', 'filling', 'filled', 'swapped')),
  -- The shadows are filled from events with seq <= started_seq; the swap catches up the rest.
  started_seq      bigint,
  -- Last hunt filled (hunts are filled in byte order); NULL before the first chunk.
  fill_cursor      text COLLATE "C",
  hunts_total      integer     NOT NULL DEFAULT 0,
  hunts_done       integer     NOT NULL DEFAULT 0,
  -- Projection rows written by the fill (inserted minus replaced).
  rows_filled      bigint      NOT NULL DEFAULT 0,
  -- Set by the swap: the newest seq the swapped-in tables cover, and what it caught up.
  max_seq          bigint,
  hunts_caught_up  integer,
  rows_swapped     bigint,
  started_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz
);
