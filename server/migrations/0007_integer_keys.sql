-- Never edit once released: add a new migration instead.

-- Integer keys on the push's path (issue 2: 10,000 ops in under 0.4 s). Every op upserts
-- its entity, one feed row per reader and one op-log row; with text keys most of that
-- time went into comparing `kind` and `id` strings down each b-tree and into splitting the
-- op log's pages, whose whole ~450-byte rows were the key of a WITHOUT ROWID tree.

-- Entities get a stable number `n`. It must be an explicit INTEGER PRIMARY KEY: VACUUM
-- (and VACUUM INTO, which backups use) may renumber a plain rowid, and feed, held and
-- ops rows now point at it. (kind, id) stays unique and is still how everything outside
-- the store names an entity.
CREATE TABLE entities_new (
    n INTEGER PRIMARY KEY,
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
    priority INTEGER,
    due_ms INTEGER,
    label TEXT,
    open_conflict INTEGER,
    cancelled INTEGER,
    UNIQUE (kind, id)
);
INSERT INTO entities_new (n, kind, id, order_id, assignee, status, customer_id, site_id,
                          asset_id, state, seq, priority, due_ms, label, open_conflict, cancelled)
    SELECT rowid, kind, id, order_id, assignee, status, customer_id, site_id,
           asset_id, state, seq, priority, due_ms, label, open_conflict, cancelled
    FROM entities ORDER BY rowid;
DROP TABLE entities;
ALTER TABLE entities_new RENAME TO entities;
-- The indexes entities had after 0006, unchanged.
CREATE INDEX entities_seq ON entities (seq);
CREATE INDEX entities_order ON entities (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX entities_assignee ON entities (assignee) WHERE assignee IS NOT NULL;
CREATE INDEX entities_customer ON entities (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX entities_site ON entities (site_id) WHERE site_id IS NOT NULL;
CREATE INDEX entities_asset ON entities (asset_id) WHERE asset_id IS NOT NULL;
CREATE INDEX entities_label ON entities (kind, label) WHERE label IS NOT NULL;
CREATE INDEX entities_open_conflicts ON entities (open_conflict) WHERE open_conflict = 1;
CREATE INDEX entities_asset_holders ON entities (asset_id, assignee, id, kind)
    WHERE kind = 'work_order' AND asset_id IS NOT NULL;

-- The feed names entities by number. Keyed entity first: a new entity's rows append at
-- the end of the tree, and a lookup is decided by one integer comparison. `gone` is in
-- the sequence index so a pull page and a digest read the index alone.
-- Entities are never deleted, so every feed row has its entity; a row naming none (not
-- written by this server) would only ever have been sent as a departure, and is dropped.
CREATE TABLE feed_new (
    ent INTEGER NOT NULL,
    user TEXT NOT NULL,
    seq INTEGER NOT NULL,
    gone INTEGER NOT NULL,
    PRIMARY KEY (ent, user)
) WITHOUT ROWID;
INSERT INTO feed_new (ent, user, seq, gone)
    SELECT e.n, f.user, f.seq, f.gone
    FROM feed f JOIN entities e ON e.kind = f.kind AND e.id = f.id;
DROP TABLE feed;
ALTER TABLE feed_new RENAME TO feed;
CREATE INDEX feed_seq ON feed (user, seq, gone);

-- The op log becomes a rowid table: rows are appended at the right edge (SQLite's cheap
-- split) and its indexes hold integers. `ent` is the entity the op wrote (NULL when it
-- was refused and the entity did not exist), which the order timeline looks up by.
CREATE TABLE ops_new (
    n INTEGER PRIMARY KEY,
    dev INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    ent INTEGER,
    hlc INTEGER NOT NULL,
    body TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    reject_code TEXT,
    reject_message TEXT
);
INSERT INTO ops_new (dev, seq, user, kind, id, ent, hlc, body, received_ms, reject_code,
                     reject_message)
    SELECT o.dev, o.seq, o.user, o.kind, o.id, e.n, o.hlc, o.body, o.received_ms,
           o.reject_code, o.reject_message
    FROM ops o LEFT JOIN entities e ON e.kind = o.kind AND e.id = o.id
    ORDER BY o.received_ms, o.dev, o.seq;
DROP TABLE ops;
ALTER TABLE ops_new RENAME TO ops;
-- Idempotence is `devices.acked_seq`; this keeps (dev, seq) unique as the old key did.
CREATE UNIQUE INDEX ops_dev_seq ON ops (dev, seq);
CREATE INDEX ops_entity ON ops (ent) WHERE ent IS NOT NULL;
-- The console counts each device's refused ops: rare rows, so a partial index.
CREATE INDEX ops_rejected ON ops (dev) WHERE reject_code IS NOT NULL;

-- Who held each order (0006), by the order's number.
CREATE TABLE held_new (
    ent INTEGER NOT NULL,
    user TEXT NOT NULL,
    PRIMARY KEY (ent, user)
) WITHOUT ROWID;
INSERT INTO held_new (ent, user)
    SELECT e.n, h.user FROM held h JOIN entities e ON e.kind = 'work_order' AND e.id = h.order_id;
DROP TABLE held;
ALTER TABLE held_new RENAME TO held;
