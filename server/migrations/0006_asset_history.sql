-- Who has held each work order (issue 5: asset service history). Until now a work-order
-- row in an engineer's feed meant they held it, and `held_at` (work done before a
-- reassignment reached the device) relied on that. Now a feed also carries the past
-- orders of every asset the engineer is assigned, which they never held and must not
-- write, so holding is recorded on its own.
CREATE TABLE IF NOT EXISTS held (
    user TEXT NOT NULL,
    order_id TEXT NOT NULL,
    PRIMARY KEY (user, order_id)
) WITHOUT ROWID;

-- Every work-order feed row written before this migration was a holding.
INSERT OR IGNORE INTO held (user, order_id)
    SELECT user, id FROM feed WHERE kind = 'work_order';

-- Who holds orders on an asset is asked on every write to an order or its records (they
-- see its history). `id` and `kind` are in the index so the answer comes from it alone,
-- without reading a row per order, however many orders the asset has.
CREATE INDEX IF NOT EXISTS entities_asset_holders ON entities (asset_id, assignee, id, kind)
    WHERE kind = 'work_order' AND asset_id IS NOT NULL;
