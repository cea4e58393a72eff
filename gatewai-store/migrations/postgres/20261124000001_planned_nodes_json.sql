-- A run's planned nodes are written whole when the run starts and read whole: JSON (kept as
-- written, only validated) instead of JSONB (parsed into its binary form, ~5x the server's
-- time for the ~70 kB of a 1,000-node run), stored out of line uncompressed.
ALTER TABLE workflow_runs ALTER COLUMN planned_nodes TYPE JSON USING planned_nodes::json;
ALTER TABLE workflow_runs ALTER COLUMN planned_nodes SET STORAGE EXTERNAL;
