-- Who owns an asset: one row per (asset, user), so that granting an asset to one more user is
-- one insert (concurrent grants never lose each other, as a rewritten list would) and every
-- read of an asset for a user can be scoped by its owners, as workflows are. An asset's
-- grants go with it, and a user's grants with the user.
CREATE TABLE asset_owners (
    asset_id    TEXT NOT NULL REFERENCES file_assets (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (asset_id, user_id)
);
CREATE INDEX asset_owners_by_user ON asset_owners (user_id, created_at DESC, asset_id DESC);

-- The user an asset was stored for becomes its first owner, and the users an earlier example
-- server listed in the asset's `metadata.owners` its owners too (those that are users); that
-- list, now stale, leaves the metadata. PostgreSQL's JSON functions refuse the NUL escape
-- (`\u0000`) a string of the metadata may hold: the owners are read from a copy with it
-- replaced, and metadata holding one keeps its list (JSONB, which removes the key, cannot take
-- it).
INSERT INTO asset_owners (asset_id, user_id, created_at)
    SELECT a.id, a.owner_id, a.created_at FROM file_assets a JOIN users u ON u.id = a.owner_id;
INSERT INTO asset_owners (asset_id, user_id, created_at)
    SELECT a.id, o.value, a.created_at
    FROM (SELECT id, created_at, replace(metadata::text, '\u0000', '\u0001')::json AS m
          FROM file_assets) a
    CROSS JOIN LATERAL json_array_elements_text(
        CASE WHEN json_typeof(a.m) = 'object' AND json_typeof(a.m -> 'owners') = 'array'
             THEN a.m -> 'owners' ELSE '[]'::json END) AS o(value)
    JOIN users u ON u.id = o.value
    ON CONFLICT (asset_id, user_id) DO NOTHING;
UPDATE file_assets SET metadata = (metadata::jsonb - 'owners')::json
    WHERE CASE WHEN position('\u0000' in metadata::text) = 0
               THEN json_typeof(metadata) = 'object' AND json_typeof(metadata -> 'owners') = 'array'
               ELSE false END;
