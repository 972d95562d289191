-- Read models kept from the event stream (README "Census and point-in-time state").
-- Where each projection has got to in the global order of events.
CREATE TABLE projection_positions (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
-- The folded state of each Admission stream, as of the projection's position: the census
-- reads the visits whose status is admitted or on_leave.
CREATE TABLE stream_states (
    stream_id   BLOB PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    stream_type TEXT NOT NULL,
    version     INTEGER NOT NULL,
    status      TEXT,
    location    TEXT,
    state       TEXT NOT NULL
);
CREATE INDEX stream_states_census ON stream_states (tenant_id, status, location);
