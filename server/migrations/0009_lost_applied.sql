-- Never edit once released: add a new migration instead.

-- Every op the database a restore replaced had applied and the backup lacks (filled by
-- `fieldsync-server restore`). Devices re-send them in whatever order they sync, so an op
-- can now arrive after one that reached the server after it the first time (an
-- unassignment sent late from another device), and fail a scope check it once passed.
-- Within the window after the restore such an op keeps the verdict it was acknowledged
-- with: applied.
-- IF NOT EXISTS: a restore of an older backup creates it before this migration runs.
CREATE TABLE IF NOT EXISTS lost_applied (
    dev INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (dev, seq)
) WITHOUT ROWID;
