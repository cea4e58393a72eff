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

-- The user an asset was stored for becomes its first owner (when that user exists).
INSERT INTO asset_owners (asset_id, user_id, created_at)
    SELECT a.id, a.owner_id, a.created_at FROM file_assets a JOIN users u ON u.id = a.owner_id;
