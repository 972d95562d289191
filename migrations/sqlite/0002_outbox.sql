-- Transactional outbox: one row per event appended while a broker is configured, written
-- in the event's own transaction. The publisher sends unpublished rows in global order and
-- sets published_at once the broker has confirmed them.
CREATE TABLE outbox (
    global_position INTEGER PRIMARY KEY REFERENCES events (global_position),
    tenant_id       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    published_at    TEXT
);
CREATE INDEX outbox_unpublished ON outbox (global_position) WHERE published_at IS NULL;

-- One publisher at a time across instances (per-stream order): the holder renews its
-- lease on every claim; another may take it once expires_at (RFC 3339 UTC, fixed
-- microsecond format, so text order is time order) has passed.
CREATE TABLE publisher_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
