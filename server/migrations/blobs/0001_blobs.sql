-- The blob store's own index (DATA_DIR/blobs/index.db). Never edit once released.
-- A verified blob is a file under sha256/; it needs no row. Rows track what is not
-- verified yet, and how many bytes each device sent each day.

-- Uploads in progress: the staged bytes are in staging/<name>, a name the server chose.
-- `held` bytes are durable (fsynced) and were each checked against their chunk's hash.
CREATE TABLE staging (
    hash       TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    held       INTEGER NOT NULL,
    device     INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Bytes received per device per UTC day, for the daily quota.
CREATE TABLE quota (
    device INTEGER NOT NULL,
    day    INTEGER NOT NULL,
    bytes  INTEGER NOT NULL,
    PRIMARY KEY (device, day)
) WITHOUT ROWID;
