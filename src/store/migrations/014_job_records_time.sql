-- The reconcile drift rows by age, for the worker's pruning of job records older than
-- JOB_RECORDS_KEEP_DAYS (src/store/correctness/job-records-retention.ts): without it each
-- pass would scan the whole table to find nothing old. reconcile_runs has its time index
-- since 004; dq_reports and job_progress stay small (rows per run, not per hunt).
--
-- Upgrading: building the index holds reconcile_drift (and the reconcile runs that record
-- drift) for a scan of it: well under a second for a million rows.
CREATE INDEX reconcile_drift_time ON reconcile_drift (recorded_at);
