-- How many of a run's workers were lost (silent past worker_lost_after) while they held it. `attempts` counts
-- every claim, including those after a worker handed the run back on shutdown, which is no loss.
ALTER TABLE runs ADD COLUMN lost_workers INTEGER NOT NULL DEFAULT 0;
