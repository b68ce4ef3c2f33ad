-- Never edit once released: add a new migration instead.

-- An acknowledged op leaves the outbox at once, but is folded into the confirmed state
-- later, mostly for free: the server sends the entity back in the next pull, and the op is
-- applied to that copy as it is saved. Until then views apply it from here, as they apply
-- pending ops from the outbox. Ops acknowledged before this migration were folded at once.
ALTER TABLE sent_log ADD COLUMN folded INTEGER NOT NULL DEFAULT 1;
CREATE INDEX sent_log_unfolded ON sent_log (kind, id) WHERE folded = 0;
