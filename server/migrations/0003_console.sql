-- Never edit once released: add a new migration instead.

-- The dispatcher console's board filters and sorts 50,000+ orders by priority and due
-- time. Those live inside `state`; virtual generated columns expose them to indexes
-- without touching the write path (SQLite computes them on insert/update).
ALTER TABLE entities ADD COLUMN priority INTEGER
    GENERATED ALWAYS AS (CASE WHEN kind = 'work_order' THEN json_extract(state, '$.fields.priority.v') END) VIRTUAL;
-- Due time until SLA clocks exist: the end of the scheduled visit.
ALTER TABLE entities ADD COLUMN due_ms INTEGER
    GENERATED ALWAYS AS (CASE WHEN kind = 'work_order' THEN json_extract(state, '$.fields.scheduled_end.v') END) VIRTUAL;
-- What a person types to find a customer, site or asset.
ALTER TABLE entities ADD COLUMN label TEXT
    GENERATED ALWAYS AS (CASE kind
        WHEN 'customer' THEN json_extract(state, '$.fields.name.v')
        WHEN 'site' THEN json_extract(state, '$.fields.name.v')
        WHEN 'asset' THEN json_extract(state, '$.fields.model.v') || ' ' || COALESCE(json_extract(state, '$.fields.serial.v'), '')
    END) VIRTUAL;
-- Conflicts not yet settled, for the inbox.
ALTER TABLE entities ADD COLUMN open_conflict INTEGER
    GENERATED ALWAYS AS (CASE WHEN kind = 'conflict' AND COALESCE(json_extract(state, '$.fields.resolved.v'), 0) = 0 THEN 1 END) VIRTUAL;

CREATE INDEX board_recent ON entities (seq) WHERE kind = 'work_order';
CREATE INDEX board_status ON entities (status, seq) WHERE kind = 'work_order';
CREATE INDEX board_priority ON entities (priority, seq) WHERE kind = 'work_order';
CREATE INDEX board_due ON entities (due_ms, seq) WHERE kind = 'work_order';
CREATE INDEX entities_label ON entities (kind, label) WHERE label IS NOT NULL;
CREATE INDEX entities_open_conflicts ON entities (open_conflict) WHERE open_conflict = 1;
-- An order's timeline reads its ops (and its records' ops) by entity.
CREATE INDEX ops_entity ON ops (kind, id);
