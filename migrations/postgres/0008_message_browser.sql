-- The message browser (README "Finding a message").
-- Business keys of each stored message (the MRN and visit number its events carry),
-- hashed: SHA-256 of "tenant NUL kind NUL value", so the index is no second plain copy of
-- them. Searching needs the phi scope.
CREATE TABLE message_keys (
    tenant_id  text NOT NULL,
    kind       text NOT NULL,                -- mrn | visit
    key_hash   bytea NOT NULL,
    message_id uuid NOT NULL REFERENCES inbound_messages (id),
    PRIMARY KEY (tenant_id, key_hash, message_id)
);
ALTER TABLE message_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE message_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON message_keys
    USING (intake_in_scope(tenant_id)) WITH CHECK (intake_in_scope(tenant_id));
GRANT SELECT, INSERT ON message_keys TO intake_app;
-- Each event's inbound message (NULL for events no message produced: audit entries), so a
-- message's events are found by an index; rows stored before this column get it from
-- their metadata's correlation id (the one change ever made to stored events, by the
-- owner, across tenants).
ALTER TABLE events ADD COLUMN inbound_id uuid;
SELECT set_config('app.tenant_id', '*', true);
ALTER TABLE events DISABLE TRIGGER events_are_append_only;
UPDATE events SET inbound_id = (metadata ->> 'correlation_id')::uuid
 WHERE metadata ? 'correlation_id';
ALTER TABLE events ENABLE TRIGGER events_are_append_only;
CREATE INDEX events_inbound ON events (inbound_id) WHERE inbound_id IS NOT NULL;
-- Browsing a tenant's messages newest first.
CREATE INDEX inbound_messages_tenant_id ON inbound_messages (tenant_id, id);
