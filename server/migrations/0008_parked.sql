-- Never edit once released: add a new migration instead.

-- After a restore, devices re-send what the server lost in whatever order they sync, so an
-- op can arrive before the op it depends on (an edit of an order another device created
-- after the backup). Such an op is acknowledged and parked here, with its body in `ops`
-- (reject_code 'parked'), and applied once what it waits for has been re-sent.
CREATE TABLE parked (
    dev INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    parked_ms INTEGER NOT NULL,
    PRIMARY KEY (dev, seq)
) WITHOUT ROWID;

-- What restores took away (filled by `fieldsync-server restore` from the database it
-- replaces): the applied ops the backup lacks, under the entity they created or the order
-- they assigned. Only ops waiting on one of these, until it is re-sent, are parked.
-- IF NOT EXISTS: a restore of an older backup creates it before this migration runs.
CREATE TABLE IF NOT EXISTS lost_ops (
    dev INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (kind, id, dev, seq)
) WITHOUT ROWID;
