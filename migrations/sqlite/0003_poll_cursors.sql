-- Where each polling source (e.g. a tenant's FHIR server, per resource type) has got to.
-- The cursor is opaque to the store (for FHIR pull: the greatest meta.lastUpdated whose
-- resources are committed); it is written only after the resources up to it committed.
CREATE TABLE poll_cursors (
    tenant_id  TEXT NOT NULL,
    source     TEXT NOT NULL,
    cursor     TEXT NOT NULL,
    updated_at TEXT NOT NULL,          -- RFC 3339 UTC
    PRIMARY KEY (tenant_id, source)
);
