-- Which job recorded a reconcile_runs row: 'reconcile' (the scheduled job, `hunt reconcile`),
-- or 'data-quality', whose score_drift check and repair reconcile hunt by hunt under run ids
-- of their own (`<run>/score-drift`, `<run>/dq-repair`). The reconcile drift figures of
-- /metrics counted both: a nightly check that met a late claim before the scheduled run
-- mended it made two drifted runs of one ordinary late claim (HuntReconcileDriftFound fired),
-- a repairing data-quality run recorded each drift twice, and while a long data-quality run
-- went on, its rows stood as "the last reconcile run" and hid what the scheduled runs found.
-- Those figures now read the reconcile job's rows alone, by this index.
--
-- Only the rows of the last two days are labelled (the figures read a day at most): the
-- table is locked while the migration runs, and holds a row per hunt per run for weeks.
--
-- Compatible with older versions: their rows take the default (an older worker's data-quality
-- run is counted as reconcile's, as before).
-- older-versions: compatible
ALTER TABLE reconcile_runs ADD COLUMN job text NOT NULL DEFAULT 'reconcile';
UPDATE reconcile_runs SET job = 'data-quality'
 WHERE reconciled_at > now() - interval '2 days' AND (run_id LIKE '%/dq-repair' OR run_id LIKE '%/score-drift');
CREATE INDEX reconcile_runs_job_time ON reconcile_runs (job, reconciled_at);
