-- Never edit once released: add a new migration instead.

-- 0003's board indexes led with the sort key and were partial on kind. The query says
-- `kind = 'work_order'`, which the primary key (kind, id) matches as an equality, so
-- without statistics SQLite walked the primary key and sorted all 50,000 orders through a
-- temp b-tree on every page. Leading with `kind` makes each index match that equality and
-- the ORDER BY at once; `seq DESC` matches the tie-break's direction, which (seq ASC)
-- could not; the due index holds the `due_ms IS NULL` expression the sort begins with.
DROP INDEX board_recent;
DROP INDEX board_status;
DROP INDEX board_priority;
DROP INDEX board_due;
CREATE INDEX board_recent ON entities (kind, seq DESC) WHERE kind = 'work_order';
CREATE INDEX board_status ON entities (kind, status, seq DESC) WHERE kind = 'work_order';
CREATE INDEX board_priority ON entities (kind, priority, seq DESC) WHERE kind = 'work_order';
CREATE INDEX board_due ON entities (kind, (due_ms IS NULL), due_ms, seq DESC) WHERE kind = 'work_order';
-- Status and priority each match thousands of orders, so a filter on one with a sort on
-- another needs both in one index to stop after a page instead of sorting the matches.
CREATE INDEX board_status_priority ON entities (kind, status, priority, seq DESC) WHERE kind = 'work_order';
CREATE INDEX board_status_due ON entities (kind, status, (due_ms IS NULL), due_ms, seq DESC) WHERE kind = 'work_order';
CREATE INDEX board_priority_status ON entities (kind, priority, status, seq DESC) WHERE kind = 'work_order';
CREATE INDEX board_priority_due ON entities (kind, priority, (due_ms IS NULL), due_ms, seq DESC) WHERE kind = 'work_order';
-- An engineer or customer has few orders; these find them (and count them) without the
-- sort indexes above outbidding the single-column ones of 0001.
CREATE INDEX board_assignee ON entities (kind, assignee, seq DESC) WHERE kind = 'work_order';
CREATE INDEX board_assignee_due ON entities (kind, assignee, (due_ms IS NULL), due_ms, seq DESC) WHERE kind = 'work_order';
CREATE INDEX board_customer ON entities (kind, customer_id, seq DESC) WHERE kind = 'work_order';

-- Orders per status, for the board's header and its unfiltered total. Counting them per
-- page read every order's row; triggers keep this table in the writing transaction, so
-- every write path (push, console, resolve) keeps it exact without knowing it exists.
CREATE TABLE board_counts (
    status TEXT PRIMARY KEY,
    n INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO board_counts (status, n)
    SELECT status, COUNT(*) FROM entities
    WHERE kind = 'work_order' AND status IS NOT NULL GROUP BY status;
CREATE TRIGGER board_counts_insert AFTER INSERT ON entities
    WHEN new.kind = 'work_order' AND new.status IS NOT NULL
BEGIN
    INSERT INTO board_counts (status, n) VALUES (new.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER board_counts_update AFTER UPDATE OF status ON entities
    WHEN new.kind = 'work_order' AND old.status IS NOT new.status
BEGIN
    UPDATE board_counts SET n = n - 1 WHERE status = old.status;
    INSERT INTO board_counts (status, n) SELECT new.status, 1 WHERE new.status IS NOT NULL
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER board_counts_delete AFTER DELETE ON entities
    WHEN old.kind = 'work_order' AND old.status IS NOT NULL
BEGIN
    UPDATE board_counts SET n = n - 1 WHERE status = old.status;
END;

-- The board lists engineers with their open load on every page; counting it parsed each
-- of their orders' JSON. The index holds `cancelled` computed once, at write time.
ALTER TABLE entities ADD COLUMN cancelled INTEGER
    GENERATED ALWAYS AS (CASE WHEN kind = 'work_order' THEN COALESCE(json_extract(state, '$.fields.cancelled.v'), 0) END) VIRTUAL;
CREATE INDEX board_open_load ON entities (kind, assignee, cancelled, status) WHERE kind = 'work_order';
