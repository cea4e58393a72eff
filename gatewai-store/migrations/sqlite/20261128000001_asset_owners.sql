-- Who owns an asset: one row per (asset, user), so that granting an asset to one more user is
-- one insert (concurrent grants never lose each other, as a rewritten list would) and every
-- read of an asset for a user can be scoped by its owners, as workflows are. An asset's
-- grants go with it, and a user's grants with the user.
CREATE TABLE asset_owners (
    asset_id    TEXT NOT NULL REFERENCES file_assets (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (asset_id, user_id)
) WITHOUT ROWID;
CREATE INDEX asset_owners_by_user ON asset_owners (user_id, created_at DESC, asset_id DESC);

-- The user an asset was stored for becomes its first owner, and the users an earlier example
-- server listed in the asset's `metadata.owners` its owners too (those that are users); that
-- list, now stale, leaves the metadata.
INSERT INTO asset_owners (asset_id, user_id, created_at)
    SELECT a.id, a.owner_id, a.created_at FROM file_assets a JOIN users u ON u.id = a.owner_id;
INSERT INTO asset_owners (asset_id, user_id, created_at)
    SELECT a.id, j.value, a.created_at
    FROM file_assets a,
         json_each(CASE WHEN json_valid(a.metadata) THEN
             CASE WHEN json_type(a.metadata, '$.owners') = 'array' THEN a.metadata ELSE '{}' END
             ELSE '{}' END, '$.owners') j
    JOIN users u ON u.id = j.value
    WHERE j.type = 'text'
    ON CONFLICT (asset_id, user_id) DO NOTHING;
UPDATE file_assets SET metadata = json_remove(metadata, '$.owners')
    WHERE CASE WHEN json_valid(metadata) THEN json_type(metadata, '$.owners') = 'array'
               ELSE 0 END;
