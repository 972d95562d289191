-- Transactional outbox: one row per appended event, written in the event's own
-- transaction when a broker is configured; the publisher marks rows published only after
-- the broker confirmed them. The lease lets one publisher at a time (across instances)
-- publish, which keeps per-stream order.
CREATE TABLE outbox (
    global_position bigint PRIMARY KEY REFERENCES events (global_position),
    tenant_id       text NOT NULL,
    created_at      timestamptz NOT NULL,
    published_at    timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (global_position) WHERE published_at IS NULL;

CREATE TABLE publisher_lease (
    id         integer PRIMARY KEY CHECK (id = 1),
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON outbox
    USING (intake_in_scope(tenant_id)) WITH CHECK (intake_in_scope(tenant_id));

GRANT SELECT, INSERT, UPDATE (published_at) ON outbox TO intake_app;
GRANT SELECT, INSERT, UPDATE ON publisher_lease TO intake_app;
