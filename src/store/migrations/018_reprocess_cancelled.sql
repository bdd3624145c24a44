-- older-versions: compatible
-- A reprocess job cancelled during its swap step is marked cancelled once it has asked
-- whether its swap committed (and it had not), so an attempt still running where the
-- cancellation cannot reach it (a worker cut off from Temporal, not from Postgres) finds the
-- job over and cannot swap after the job reported cancelled.
--
-- Instant: the constraint is replaced without checking the rows it already holds. Older
-- versions never write the phase; a step of theirs that meets it fails (the job is over),
-- and their next run of the projection takes the row over as before.
ALTER TABLE reprocess_jobs DROP CONSTRAINT reprocess_jobs_phase_check;
ALTER TABLE reprocess_jobs ADD CONSTRAINT reprocess_jobs_phase_check
  CHECK (phase IN ('preparing', 'filling', 'filled', 'swapped', 'cancelled')) NOT VALID;
