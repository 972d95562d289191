-- Where each polling source (e.g. a tenant's FHIR server, per resource type) has got to.
CREATE TABLE poll_cursors (
    tenant_id  text NOT NULL,
    source     text NOT NULL,
    cursor     text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, source)
);

ALTER TABLE poll_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE poll_cursors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON poll_cursors
    USING (intake_in_scope(tenant_id)) WITH CHECK (intake_in_scope(tenant_id));

GRANT SELECT, INSERT, UPDATE (cursor, updated_at) ON poll_cursors TO intake_app;
