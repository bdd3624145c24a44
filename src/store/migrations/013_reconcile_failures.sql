-- Hunts whose reconciliation fails for what they hold, not for the database's state: a value
-- the recomputation's tables refuse (a CHECK an operator added to player_scores, say), or a
-- hunt too big to recompute inside the step's statement limit. Such a failure comes back on
-- every retry; before, the run's step was retried for ever on that hunt, so no hunt after it
-- in the run was reconciled, the watermark stood still and the Schedule skipped every later
-- run. Now the run records the hunt here and goes on, and the runs scoped by the watermark
-- try it again, with a backoff (`retry_after`), until one reconciles it and deletes the row
-- (src/correctness/reconcile-job.ts). Alert HuntReconcileHuntsFailing watches the table.
--
-- Upgrading: a new, empty table.
CREATE TABLE reconcile_failures (
  hunt_id          text COLLATE "C" PRIMARY KEY,
  run_id           text        NOT NULL,
  error            text        NOT NULL,
  attempts         integer     NOT NULL DEFAULT 1,
  first_failed_at  timestamptz NOT NULL DEFAULT now(),
  last_failed_at   timestamptz NOT NULL DEFAULT now(),
  retry_after      timestamptz NOT NULL
);
