-- The correctness plane's records: what each reconciliation found and repaired, and the
-- data-quality reports.

-- One row per reconciled hunt per run.
CREATE TABLE reconcile_runs (
  run_id             text        NOT NULL,
  hunt_id            text COLLATE "C" NOT NULL,
  players_checked    integer     NOT NULL,
  players_drifted    integer     NOT NULL,
  treasures_changed  integer     NOT NULL,
  repaired           boolean     NOT NULL,
  reconciled_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, hunt_id)
);
CREATE INDEX reconcile_runs_time ON reconcile_runs (reconciled_at);

-- What was wrong: per player (fields that differed, live value and final value) or per
-- treasure (live winner and final winner).
CREATE TABLE reconcile_drift (
  id           bigserial   PRIMARY KEY,
  run_id       text        NOT NULL,
  hunt_id      text COLLATE "C" NOT NULL,
  kind         text        NOT NULL CHECK (kind IN ('player', 'treasure')),
  subject_id   text COLLATE "C" NOT NULL,
  live         jsonb,
  final        jsonb,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconcile_drift_run ON reconcile_drift (run_id, hunt_id);

-- Data-quality reports: one row per check per run.
CREATE TABLE dq_reports (
  run_id         text        NOT NULL,
  check_name     text        NOT NULL,
  severity       text        NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
  finding_count  integer     NOT NULL,
  samples        jsonb       NOT NULL DEFAULT '[]',
  repaired       jsonb,
  checked_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, check_name)
);
