-- Version 5: reports sent again by a worker's spool (written while no primary answered) are
-- stored once: the sender's key is unique.
ALTER TABLE reports ADD COLUMN idempotency_key text UNIQUE;
