-- The message browser (README "Finding a message"). Business keys of each stored message
-- (the MRN and visit number its events carry), hashed: SHA-256 of "tenant NUL kind NUL
-- value", so the index is no second plain copy of them. Searching needs the phi scope.
CREATE TABLE message_keys (
    tenant_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,                -- mrn | visit
    key_hash   BLOB NOT NULL,
    message_id BLOB NOT NULL REFERENCES inbound_messages (id),
    PRIMARY KEY (tenant_id, key_hash, message_id)
) WITHOUT ROWID;
-- A message's events, by the inbound id every event's metadata carries.
CREATE INDEX events_correlation ON events (json_extract(metadata, '$.correlation_id'));
-- Browsing a tenant's messages newest first.
CREATE INDEX inbound_messages_tenant_id ON inbound_messages (tenant_id, id);
