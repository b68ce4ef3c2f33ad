-- Never edit once released: add a new migration instead.

-- The board's sort and filter indexes (0003, 0004) made every push pay for twelve index
-- writes per order, over VIRTUAL columns that re-parsed the entity's JSON once per index:
-- a 10,000-op push became seven times slower. The board is now a read model in its own
-- SQLite file (`store/board.rs`), derived from `entities` by a follower thread after each
-- commit. Here the write path keeps only plain copies of the fields the follower and the
-- console's search and inbox read, which `save()` writes from the state it has parsed.
DROP INDEX board_recent;
DROP INDEX board_status;
DROP INDEX board_priority;
DROP INDEX board_due;
DROP INDEX board_status_priority;
DROP INDEX board_status_due;
DROP INDEX board_priority_status;
DROP INDEX board_priority_due;
DROP INDEX board_assignee;
DROP INDEX board_assignee_due;
DROP INDEX board_customer;
DROP INDEX board_open_load;
DROP INDEX entities_label;
DROP INDEX entities_open_conflicts;
DROP TRIGGER board_counts_insert;
DROP TRIGGER board_counts_update;
DROP TRIGGER board_counts_delete;
DROP TABLE board_counts;

ALTER TABLE entities DROP COLUMN priority;
ALTER TABLE entities DROP COLUMN due_ms;
ALTER TABLE entities DROP COLUMN label;
ALTER TABLE entities DROP COLUMN open_conflict;
ALTER TABLE entities DROP COLUMN cancelled;

ALTER TABLE entities ADD COLUMN priority INTEGER;
ALTER TABLE entities ADD COLUMN due_ms INTEGER;
ALTER TABLE entities ADD COLUMN label TEXT;
ALTER TABLE entities ADD COLUMN open_conflict INTEGER;
ALTER TABLE entities ADD COLUMN cancelled INTEGER;

-- The same values the virtual columns computed.
UPDATE entities SET
    priority = CASE WHEN kind = 'work_order' THEN json_extract(state, '$.fields.priority.v') END,
    due_ms = CASE WHEN kind = 'work_order' THEN json_extract(state, '$.fields.scheduled_end.v') END,
    label = CASE kind
        WHEN 'customer' THEN json_extract(state, '$.fields.name.v')
        WHEN 'site' THEN json_extract(state, '$.fields.name.v')
        WHEN 'asset' THEN json_extract(state, '$.fields.model.v') || ' ' || COALESCE(json_extract(state, '$.fields.serial.v'), '')
    END,
    open_conflict = CASE WHEN kind = 'conflict' AND COALESCE(json_extract(state, '$.fields.resolved.v'), 0) = 0 THEN 1 END,
    cancelled = CASE WHEN kind = 'work_order' THEN COALESCE(json_extract(state, '$.fields.cancelled.v'), 0) END;

-- Work orders never carry a label or an open conflict, so these partial indexes cost an
-- order write nothing.
CREATE INDEX entities_label ON entities (kind, label) WHERE label IS NOT NULL;
CREATE INDEX entities_open_conflicts ON entities (open_conflict) WHERE open_conflict = 1;
