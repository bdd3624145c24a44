-- Reconcile records clue-credit drift too. A credit can differ where no player total does
-- (an earlier find of a clue worth the same points): such drift was repaired, but a run
-- that only checks (`--no-repair`, data quality's score_drift) reported none.
--
-- Both changes are instant: the constraint is replaced without checking the rows it already
-- holds (all are 'player' or 'treasure'), and the column's default is a constant. An older
-- worker still running records runs as before, with no credits counted.
ALTER TABLE reconcile_drift DROP CONSTRAINT reconcile_drift_kind_check;
ALTER TABLE reconcile_drift ADD CONSTRAINT reconcile_drift_kind_check CHECK (kind IN ('player', 'treasure', 'credit')) NOT VALID;
ALTER TABLE reconcile_runs ADD COLUMN credits_drifted integer NOT NULL DEFAULT 0;
