-- intake event store (SQLite). Events and raw messages are append-only.

-- Every inbound message, verbatim. The idempotency key is (tenant, MSH-4, MSH-10);
-- rows whose key is unknown (not HL7, unknown tenant) have NULLs, which never collide.
CREATE TABLE inbound_messages (
    id               BLOB PRIMARY KEY,          -- UUIDv7, assigned on receipt
    tenant_id        TEXT,
    sending_facility TEXT,
    control_id       TEXT,
    channel          TEXT NOT NULL,
    message_type     TEXT,                      -- e.g. ADT^A01
    raw              BLOB NOT NULL,             -- the bytes as received
    received_at      TEXT NOT NULL,             -- RFC 3339
    outcome          TEXT NOT NULL,             -- stored | dead_lettered
    ack_code         TEXT NOT NULL,             -- A | E | R: replayed to resends
    reason_code      TEXT,                      -- stable code when dead-lettered
    event_count      INTEGER NOT NULL
);
CREATE UNIQUE INDEX inbound_messages_idempotency
    ON inbound_messages (tenant_id, sending_facility, control_id);

CREATE TABLE events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        BLOB NOT NULL UNIQUE,      -- deterministic, time-ordered UUIDv8
    stream_id       BLOB NOT NULL,             -- UUIDv5(tenant, stream type, key)
    stream_type     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    event_version   INTEGER NOT NULL,
    tenant_id       TEXT NOT NULL,
    data            TEXT NOT NULL,             -- JSON
    metadata        TEXT NOT NULL,             -- JSON
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    UNIQUE (stream_id, event_version)
);
CREATE INDEX events_tenant_position ON events (tenant_id, global_position);

CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER inbound_raw_is_immutable BEFORE UPDATE OF raw ON inbound_messages
BEGIN SELECT RAISE(ABORT, 'raw messages are immutable'); END;

-- Messages that could not become events. The raw bytes stay in inbound_messages.
CREATE TABLE dead_letters (
    id          BLOB PRIMARY KEY,              -- = the inbound message id
    inbound_id  BLOB NOT NULL REFERENCES inbound_messages (id),
    tenant_id   TEXT,
    stage       TEXT NOT NULL,                 -- decode | parse | route | map
    reason_code TEXT NOT NULL,
    detail      TEXT,                          -- field name and path; never a value
    status      TEXT NOT NULL DEFAULT 'open',  -- open | replayed | discarded
    created_at  TEXT NOT NULL
);
CREATE INDEX dead_letters_tenant_status ON dead_letters (tenant_id, status, created_at);
