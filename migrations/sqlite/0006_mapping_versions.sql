-- Staged mapping deploys: each version of a tenant's mapping files that went live, with
-- the files themselves, so `intake mappings rollback` can restore the previous one. The
-- engine keeps the last N rows per tenant ([mappings] history, README "Staged deploys").
CREATE TABLE mapping_versions (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT NOT NULL,
    version    TEXT NOT NULL,          -- the tenant's mapping version (hash of its files)
    applied_at TEXT NOT NULL,          -- RFC 3339 UTC
    origin     TEXT NOT NULL,          -- start | reload | rollback
    files      TEXT NOT NULL           -- JSON object: file path below the tenant folder -> text
);
CREATE INDEX mapping_versions_by_tenant ON mapping_versions (tenant_id, seq);
