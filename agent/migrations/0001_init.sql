-- The agent's store. Never edit once released: add a new migration instead.

-- Enrollment, cursors and clocks, one row per key.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Server-confirmed state of every entity in this device's scope: what pulls delivered,
-- joined with our own ops once the server acknowledged them. `gone` marks an entity that
-- left the scope but is kept read-only until our own pending ops for it are acknowledged.
CREATE TABLE entities (
    kind     TEXT NOT NULL,
    id       TEXT NOT NULL,
    order_id TEXT,
    state    TEXT NOT NULL,
    gone     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX entities_by_order ON entities (order_id);

-- Every local op, written in the same transaction as the change it makes. A row is
-- pending until the server acknowledges it; then it is folded into `entities` and
-- deleted, or, if the server refused it, kept with the reason for the engineer to see.
CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    id               TEXT NOT NULL,
    order_id         TEXT,
    op               TEXT NOT NULL,
    created_ms       INTEGER NOT NULL,
    rejected_code    TEXT,
    rejected_message TEXT
);
CREATE INDEX outbox_by_entity ON outbox (kind, id);
CREATE INDEX outbox_by_order ON outbox (order_id);
