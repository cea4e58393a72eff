-- Gatewai store schema, SQLite dialect. Timestamps are RFC 3339 text (UTC), JSON is text.

CREATE TABLE users (
    id          TEXT PRIMARY KEY NOT NULL,
    email       TEXT NOT NULL,
    first_name  TEXT,
    last_name   TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE workflows (
    id          TEXT PRIMARY KEY NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX workflows_by_owner ON workflows (owner_id, updated_at DESC, id DESC);

CREATE TABLE workflow_runs (
    id            TEXT PRIMARY KEY NOT NULL,
    workflow_id   TEXT REFERENCES workflows (id) ON DELETE CASCADE,
    trigger_type  TEXT NOT NULL DEFAULT 'MANUAL',
    status        TEXT NOT NULL DEFAULT 'PENDING',
    error         TEXT,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    -- The nodes the run queued and has no node_executions row for yet: a JSON array of
    -- {nodeId, nodeType, label, seq}. Written with the run in one statement instead of a
    -- row per node; a node's row, once written, supersedes its entry.
    planned_nodes TEXT
);
CREATE INDEX workflow_runs_history ON workflow_runs (workflow_id, created_at DESC, id DESC);
CREATE INDEX workflow_runs_by_status ON workflow_runs (status);

CREATE TABLE node_executions (
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
) WITHOUT ROWID;

CREATE TABLE file_assets (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    bucket      TEXT NOT NULL,
    key         TEXT NOT NULL,
    mime_type   TEXT NOT NULL,
    size        INTEGER NOT NULL,
    width       INTEGER,
    height      INTEGER,
    fps         REAL,
    duration    REAL,
    metadata    TEXT,
    extra       TEXT,
    owner_id    TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX file_assets_by_owner ON file_assets (owner_id);

CREATE TABLE cache_entries (
    key         TEXT PRIMARY KEY NOT NULL,
    outputs     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
