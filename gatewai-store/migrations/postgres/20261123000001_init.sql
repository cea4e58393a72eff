-- Gatewai store schema, PostgreSQL dialect.

CREATE TABLE users (
    id          TEXT PRIMARY KEY NOT NULL,
    email       TEXT NOT NULL,
    first_name  TEXT,
    last_name   TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE workflows (
    id          TEXT PRIMARY KEY NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    document    JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX workflows_by_owner ON workflows (owner_id, updated_at DESC, id DESC);

CREATE TABLE workflow_runs (
    id            TEXT PRIMARY KEY NOT NULL,
    workflow_id   TEXT REFERENCES workflows (id) ON DELETE CASCADE,
    trigger_type  TEXT NOT NULL DEFAULT 'MANUAL',
    status        TEXT NOT NULL DEFAULT 'PENDING',
    error         TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    -- The nodes the run queued and has no node_executions row for yet: a JSON array of
    -- {nodeId, nodeType, label, seq}. Written with the run in one statement instead of a
    -- row per node; a node's row, once written, supersedes its entry.
    planned_nodes JSONB
);
CREATE INDEX workflow_runs_history ON workflow_runs (workflow_id, created_at DESC, id DESC);
CREATE INDEX workflow_runs_by_status ON workflow_runs (status);

CREATE TABLE node_executions (
    run_id       TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id      TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    node_type    TEXT NOT NULL,
    node_label   TEXT NOT NULL,
    status       TEXT NOT NULL,
    input_data   JSONB,
    output_data  JSONB,
    error        TEXT,
    cached       BOOLEAN NOT NULL DEFAULT FALSE,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    duration_ms  BIGINT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, node_id)
);

CREATE TABLE file_assets (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    bucket      TEXT NOT NULL,
    key         TEXT NOT NULL,
    mime_type   TEXT NOT NULL,
    size        BIGINT NOT NULL,
    width       INTEGER,
    height      INTEGER,
    fps         DOUBLE PRECISION,
    duration    DOUBLE PRECISION,
    metadata    JSONB,
    extra       JSONB,
    owner_id    TEXT,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX file_assets_by_owner ON file_assets (owner_id);

CREATE TABLE cache_entries (
    key         TEXT PRIMARY KEY NOT NULL,
    outputs     JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
