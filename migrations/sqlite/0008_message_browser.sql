-- The message browser (README "Finding a message").
-- Business keys of each stored message (the MRN and visit number its events carry),
-- hashed: SHA-256 of "tenant NUL kind NUL value", so the index is no second plain copy of
-- them. Searching needs the phi scope.
CREATE TABLE message_keys (
    tenant_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,                -- mrn | visit
    key_hash   BLOB NOT NULL,
    message_id BLOB NOT NULL REFERENCES inbound_messages (id),
    PRIMARY KEY (tenant_id, key_hash, message_id)
) WITHOUT ROWID;
-- Each event's inbound message (NULL for events no message produced: audit entries), so a
-- message's events are found by an index; rows stored before this column get it from
-- their metadata's correlation id (the one change ever made to stored events).
ALTER TABLE events ADD COLUMN inbound_id BLOB;
DROP TRIGGER events_are_append_only_update;
UPDATE events SET inbound_id = unhex(replace(json_extract(metadata, '$.correlation_id'), '-', ''))
 WHERE json_extract(metadata, '$.correlation_id') IS NOT NULL;
CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE INDEX events_inbound ON events (inbound_id) WHERE inbound_id IS NOT NULL;
-- Browsing a tenant's messages newest first.
CREATE INDEX inbound_messages_tenant_id ON inbound_messages (tenant_id, id);
