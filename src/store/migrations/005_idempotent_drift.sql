-- A retried reconcile or data-quality check records the same drift again under the same
-- run: one row per run, hunt and subject, so the retry adds nothing.
DELETE FROM reconcile_drift a USING reconcile_drift b
 WHERE a.id > b.id AND a.run_id = b.run_id AND a.hunt_id = b.hunt_id AND a.kind = b.kind AND a.subject_id = b.subject_id;
CREATE UNIQUE INDEX reconcile_drift_subject ON reconcile_drift (run_id, hunt_id, kind, subject_id);
DROP INDEX reconcile_drift_run;
