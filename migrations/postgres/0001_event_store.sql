-- intake event store (PostgreSQL). Events and raw messages are append-only, and every
-- tenant-scoped table is guarded by row-level security.
--
-- Roles: the role that runs this migration owns the tables. The engine logs in as a
-- member of the group role `intake_app`, which gets only the privileges it needs (no
-- UPDATE or DELETE on events, no DDL). RLS is FORCEd, so even the owner is subject to it;
-- only superusers and BYPASSRLS roles are not, and `intake serve` refuses to run as one.
--
-- Tenant scope: every engine transaction first sets `app.tenant_id` (transaction-local):
-- a tenant id, or `*` for the engine's own cross-tenant work (the batching writer, which
-- commits many tenants' messages in one transaction; the outbox publisher; admin reads).
-- Without the setting a session sees and writes nothing.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'intake_app') THEN
        BEGIN
            CREATE ROLE intake_app NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL; -- created concurrently
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role intake_app does not exist and this role may not create it'
                    USING HINT = 'as a superuser: CREATE ROLE intake_app NOLOGIN; GRANT intake_app TO <engine login>';
        END;
    END IF;
END
$$;

-- Whether the current transaction's tenant scope covers `tenant`.
CREATE FUNCTION intake_in_scope(tenant text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT current_setting('app.tenant_id', true) = '*'
              OR tenant = current_setting('app.tenant_id', true) $$;

-- Every inbound message, verbatim. The idempotency key is (tenant, MSH-4, MSH-10); rows
-- whose key is unknown (not HL7, unknown tenant) have NULLs, which never collide.
CREATE TABLE inbound_messages (
    id               uuid PRIMARY KEY,               -- UUIDv7, assigned on receipt
    tenant_id        text,
    sending_facility text,
    control_id       text,
    channel          text NOT NULL,
    message_type     text,                           -- e.g. ADT^A01
    raw              bytea NOT NULL,                 -- the bytes as received
    received_at      timestamptz NOT NULL,
    outcome          text NOT NULL,                  -- stored | dead_lettered
    ack_code         text NOT NULL,                  -- A | E | R: replayed to resends
    reason_code      text,                           -- stable code when dead-lettered
    event_count      integer NOT NULL
);
CREATE UNIQUE INDEX inbound_messages_idempotency
    ON inbound_messages (tenant_id, sending_facility, control_id);

CREATE TABLE events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,            -- deterministic, time-ordered UUIDv8
    stream_id       uuid NOT NULL,                   -- UUIDv5(tenant, stream type, key)
    stream_type     text NOT NULL,
    event_type      text NOT NULL,
    event_version   bigint NOT NULL,
    tenant_id       text NOT NULL,
    data            jsonb NOT NULL,
    metadata        jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    created_by      text NOT NULL,
    UNIQUE (stream_id, event_version)
);
CREATE INDEX events_tenant_position ON events (tenant_id, global_position);

CREATE FUNCTION intake_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER events_are_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION intake_refuse_change();
CREATE TRIGGER events_are_never_truncated BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION intake_refuse_change();
CREATE TRIGGER inbound_messages_are_append_only BEFORE UPDATE OR DELETE ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION intake_refuse_change();

-- Messages that could not become events. The raw bytes stay in inbound_messages.
CREATE TABLE dead_letters (
    id          uuid PRIMARY KEY,                    -- = the inbound message id
    inbound_id  uuid NOT NULL REFERENCES inbound_messages (id),
    tenant_id   text,
    stage       text NOT NULL,                       -- decode | parse | route | map
    reason_code text NOT NULL,
    detail      text,                                -- field name and path; never a value
    status      text NOT NULL DEFAULT 'open',        -- open | replayed | discarded
    created_at  timestamptz NOT NULL
);
CREATE INDEX dead_letters_tenant_status ON dead_letters (tenant_id, status, created_at);

ALTER TABLE inbound_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbound_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON inbound_messages
    USING (intake_in_scope(tenant_id)) WITH CHECK (intake_in_scope(tenant_id));
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON events
    USING (intake_in_scope(tenant_id)) WITH CHECK (intake_in_scope(tenant_id));
ALTER TABLE dead_letters ENABLE ROW LEVEL SECURITY;
ALTER TABLE dead_letters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON dead_letters
    USING (intake_in_scope(tenant_id)) WITH CHECK (intake_in_scope(tenant_id));

GRANT USAGE ON SCHEMA public TO intake_app;
GRANT SELECT, INSERT ON inbound_messages, events TO intake_app;
GRANT SELECT, INSERT, UPDATE (status) ON dead_letters TO intake_app;
GRANT SELECT ON _sqlx_migrations TO intake_app;
GRANT EXECUTE ON FUNCTION intake_in_scope(text) TO intake_app;
