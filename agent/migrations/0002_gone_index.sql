-- Never edit once released: add a new migration instead.

-- Every ack and pull purges entities that left the scope. Without this index that purge
-- scans the whole table each time; with it, it reads only the (usually zero) gone rows.
CREATE INDEX entities_gone ON entities (kind, id) WHERE gone = 1;
