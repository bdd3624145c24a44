-- The scheduled jobs' watermark rows exist from the start, stamped with the migration's time.
-- Before, a job created its row on its first run: a deployment whose Schedules never ran
-- (never applied, or deleted) had no watermark age at all, so HuntScheduledJobBehind had
-- nothing to fire on and provisional results were never corrected, unnoticed. Now the age
-- grows from here until the first run. Rows a job already made are left as they are.
INSERT INTO job_watermarks (job) VALUES ('rollupFlush'), ('reconcile') ON CONFLICT (job) DO NOTHING;
