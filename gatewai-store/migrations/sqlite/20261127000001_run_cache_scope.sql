-- The cache scope a run's node keys were computed in (`RunOptions::cache_scope`): a resumed
-- run is handed it back, so that its nodes' keys match the recorded ones.
ALTER TABLE workflow_runs ADD COLUMN cache_scope TEXT;
