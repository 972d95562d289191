-- Staged mapping deploys: each version of a tenant's mapping files that went live, with
-- the files themselves, so `intake mappings rollback` can restore the previous one. The
-- engine keeps the last N rows per tenant ([mappings] history, README "Staged deploys").
CREATE TABLE mapping_versions (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  text NOT NULL,
    version    text NOT NULL,
    applied_at timestamptz NOT NULL,
    origin     text NOT NULL,
    files      text NOT NULL
);
CREATE INDEX mapping_versions_by_tenant ON mapping_versions (tenant_id, seq);

ALTER TABLE mapping_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE mapping_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON mapping_versions
    USING (intake_in_scope(tenant_id)) WITH CHECK (intake_in_scope(tenant_id));

-- Old versions beyond the kept number are deleted: this is history of mapping files, not
-- of messages (events and raw messages are never deleted).
GRANT SELECT, INSERT, DELETE ON mapping_versions TO intake_app;
