-- Read models kept from the event stream (README "Census and point-in-time state").
-- Where each projection has got to in the global order of events (engine-wide: it names
-- no tenant and holds no tenant data).
CREATE TABLE projection_positions (
    name       text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON projection_positions TO intake_app;
-- The folded state of each Admission stream, as of the projection's position: the census
-- reads the visits whose status is admitted or on_leave.
CREATE TABLE stream_states (
    stream_id   uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    stream_type text NOT NULL,
    version     bigint NOT NULL,
    status      text,
    location    text,
    state       jsonb NOT NULL
);
CREATE INDEX stream_states_census ON stream_states (tenant_id, status, location);
ALTER TABLE stream_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE stream_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON stream_states
    USING (intake_in_scope(tenant_id)) WITH CHECK (intake_in_scope(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON stream_states TO intake_app;
