-- Released migrations are never edited: add a new file instead.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
-- Device 0 is the server itself: dispatcher edits made through the API are its ops.
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    name TEXT NOT NULL,
    acked_seq INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    last_seen_ms INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0
);
INSERT INTO devices (id, user, name, created_ms) VALUES (0, 'server', 'server', 0);
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    device INTEGER,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0
);
-- Current merged state of every entity. The link columns are copies of fields, kept for
-- scope fan-out and filters; `state` is the truth.
CREATE TABLE entities (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    order_id TEXT,
    assignee TEXT,
    status TEXT,
    customer_id TEXT,
    site_id TEXT,
    asset_id TEXT,
    state TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX entities_seq ON entities (seq);
CREATE INDEX entities_order ON entities (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX entities_assignee ON entities (assignee) WHERE assignee IS NOT NULL;
CREATE INDEX entities_customer ON entities (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX entities_site ON entities (site_id) WHERE site_id IS NOT NULL;
CREATE INDEX entities_asset ON entities (asset_id) WHERE asset_id IS NOT NULL;
-- Per-user change feed: one row per entity in (or recently gone from) the user's scope,
-- carrying the server sequence of its latest change. A pull is one range scan.
CREATE TABLE feed (
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    gone INTEGER NOT NULL,
    PRIMARY KEY (user, kind, id)
) WITHOUT ROWID;
CREATE INDEX feed_seq ON feed (user, seq);
-- Every op ever received, applied or refused: the audit trail, and the memory that makes
-- re-sends idempotent.
CREATE TABLE ops (
    dev INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    body TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    reject_code TEXT,
    reject_message TEXT,
    PRIMARY KEY (dev, seq)
) WITHOUT ROWID;
