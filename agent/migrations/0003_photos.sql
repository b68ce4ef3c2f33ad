-- Never edit once released: add a new migration instead.

-- Photos this device attached, one row per photo record. Written in the same transaction
-- as the record's op, so a photo can never exist as an op without its upload bookkeeping.
-- Kept after the order leaves the scope: the bytes must still reach the server.
CREATE TABLE photos (
    id          TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    hash        TEXT NOT NULL,
    name        TEXT,
    caption     TEXT,
    mime        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    taken_at    INTEGER,
    lat         REAL,
    lon         REAL,
    source      TEXT NOT NULL,
    imported_ms INTEGER NOT NULL
);
CREATE INDEX photos_by_order ON photos (order_id);
CREATE INDEX photos_by_hash ON photos (hash);

-- Upload state per blob (deduplicated by hash): local -> uploading -> verified, or
-- refused with the server's reason. `bytes_sent` is what the server last said it holds;
-- `local` is 0 once retention deleted our copy, which happens only after `verified`.
CREATE TABLE uploads (
    hash        TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    state       TEXT NOT NULL,
    bytes_sent  INTEGER NOT NULL DEFAULT 0,
    verified_ms INTEGER,
    local       INTEGER NOT NULL DEFAULT 1,
    error       TEXT,
    created_ms  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_by_state ON uploads (state);

-- Files refused at import. They stay where they were; this says why, until the file
-- changes or is imported. `retry` marks refusals about the folder rather than the file
-- (an order not on this device yet): those files are looked at again on every pass.
CREATE TABLE photo_refusals (
    path     TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    reason   TEXT NOT NULL,
    retry    INTEGER NOT NULL DEFAULT 0,
    size     INTEGER NOT NULL,
    mtime_ms INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX photo_refusals_by_order ON photo_refusals (order_id);
