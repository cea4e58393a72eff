-- node_executions becomes a rowid table (its primary key an index beside it). A run's rows
-- are written in the order they arrive, so a rowid table appends them to its last page,
-- where the clustered WITHOUT ROWID table kept splitting pages in the middle of the
-- B-tree: the run recorder's writes were ~15% slower and dirtied more pages per batch.

CREATE TABLE node_executions_rowid (
    run_id       TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id      TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    node_type    TEXT NOT NULL,
    node_label   TEXT NOT NULL,
    status       TEXT NOT NULL,
    input_data   TEXT,
    output_data  TEXT,
    error        TEXT,
    cached       BOOLEAN NOT NULL DEFAULT 0,
    started_at   TEXT,
    finished_at  TEXT,
    duration_ms  INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, node_id)
);

INSERT INTO node_executions_rowid (run_id, node_id, seq, node_type, node_label, status,
    input_data, output_data, error, cached, started_at, finished_at, duration_ms, attempts)
SELECT run_id, node_id, seq, node_type, node_label, status, input_data, output_data, error,
    cached, started_at, finished_at, duration_ms, attempts
FROM node_executions ORDER BY run_id, seq, node_id;

DROP TABLE node_executions;

ALTER TABLE node_executions_rowid RENAME TO node_executions;
