-- A job step's progress (its cursor and what it has counted so far), committed in the same
-- transaction as the work it describes. Heartbeats reach Temporal at most every 80% of the
-- heartbeat timeout and die with their worker, so a retry that resumed from one redid work
-- already committed, counting it again or not at all (dlqReplay's totals, dataQuality's
-- report). One row per job run and step; `attempt` is the newest attempt, which owns the
-- row: an older one still running can no longer save (src/store/correctness/job-progress.ts).
CREATE TABLE job_progress (
  run_id      text        NOT NULL,
  step        text        NOT NULL,
  attempt     integer     NOT NULL CHECK (attempt > 0),
  state       jsonb,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, step)
);
