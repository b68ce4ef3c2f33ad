-- Never edit once released: add a new migration instead.

-- The server's epoch: which history of this database agents are talking to. A restore
-- from backup gives the database a new epoch, so agents notice the rollback, re-send what
-- the server lost and pull again from the start. Kept below 2^53 so it survives JSON in
-- a browser.
INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', 1 + abs(random() % 9007199254740990));
