-- The cache key each node execution ran with (64 hex digits): a resumed run reuses a
-- recorded result only while the node's key is unchanged.
ALTER TABLE node_executions ADD COLUMN cache_key TEXT;
