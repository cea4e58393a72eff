-- Every JSON column becomes JSON (kept as written, only validated) instead of JSONB. They
-- carry user data (a workflow document, a node's input and output snapshots, a cached result,
-- an asset's metadata and extra fields), and a string of it may hold a NUL character, which
-- JSON writes as the escape \u0000: JSONB refuses that escape (it cannot convert it to text)
-- and failed the whole write (a run recorder's batch with it), where JSON stores it as is and
-- reads it back unchanged, as SQLite's text does. The store reads and writes these values
-- whole and never queries into them, so JSONB's operators and indexing are not missed (and
-- JSON is the cheaper to write: the server does not convert it to a binary form).
ALTER TABLE workflows ALTER COLUMN document TYPE JSON USING document::json;
ALTER TABLE node_executions
    ALTER COLUMN input_data TYPE JSON USING input_data::json,
    ALTER COLUMN output_data TYPE JSON USING output_data::json;
ALTER TABLE cache_entries ALTER COLUMN outputs TYPE JSON USING outputs::json;
ALTER TABLE file_assets
    ALTER COLUMN metadata TYPE JSON USING metadata::json,
    ALTER COLUMN extra TYPE JSON USING extra::json;
