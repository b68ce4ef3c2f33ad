-- Never edit once released: add a new migration instead.

-- Ops the server acknowledged, kept after they leave the outbox. If the server is ever
-- restored from a backup that predates some of them, they are put back in the outbox and
-- sent again: the device is the other copy of its own work.
CREATE TABLE sent_log (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    order_id   TEXT,
    op         TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    acked_ms   INTEGER NOT NULL
);
CREATE INDEX sent_log_by_acked ON sent_log (acked_ms);

-- Set on every entity when the server's history was rolled back; cleared as a full pull
-- from the start delivers it again. What is still set when that pull ends is no longer on
-- the server, and leaves the scope.
ALTER TABLE entities ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;
