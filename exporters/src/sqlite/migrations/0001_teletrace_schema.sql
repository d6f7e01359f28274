-- The Teletrace SQLite layout: the tables and columns the Teletrace sqlite exporter wrote,
-- so existing SQL against embedded_spans.db keeps working, plus what that layout lacked:
-- indexes for trace ID, parent span ID and attribute key/value lookups, linked trace and
-- span IDs on links, and a catalog of attribute keys for the tags API.
--
-- Ingestion segments. Indexes keyed by random values (span IDs, trace IDs, attribute
-- values) turn every batch into writes all over the index once it outgrows the cache; in
-- SQLite that cost grows with the database. So the high-volume indexes lead with
-- `bucket`, the ingestion segment a row was written in (about 16,384 spans each): a
-- batch writes into the current segment's small region only, and a lookup seeks once per
-- segment (`segments` lists them with their start-time range, to skip segments outside a
-- search's timeframe).
--
-- Foreign keys are declared for documentation and tools; the exporter does not enforce
-- them (PRAGMA foreign_keys = OFF).

CREATE TABLE IF NOT EXISTS scopes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT,
    version TEXT,
    dropped_attributes_count INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS spans (
    span_id TEXT PRIMARY KEY CHECK (length(span_id) = 16),
    trace_id TEXT NOT NULL CHECK (length(trace_id) = 32),
    trace_state TEXT,
    parent_span_id TEXT,
    name TEXT,
    kind TEXT,
    start_time_unix_nano INTEGER NOT NULL,
    end_time_unix_nano INTEGER NOT NULL,
    dropped_span_attributes_count INTEGER NOT NULL,
    span_status_message TEXT NOT NULL,
    span_status_code TEXT NOT NULL,
    dropped_resource_attributes_count INTEGER NOT NULL,
    dropped_events_count INTEGER NOT NULL,
    dropped_links_count INTEGER NOT NULL,
    duration INTEGER NOT NULL,
    ingestion_time_unix_nano INTEGER NOT NULL,
    instrumentation_scope_id INTEGER NOT NULL,
    -- Added: the ingestion segment, and the span's resource (see resource_set_members).
    bucket INTEGER NOT NULL DEFAULT 0,
    resource_set_id TEXT,
    FOREIGN KEY (instrumentation_scope_id) REFERENCES scopes (id)
);

CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    span_id TEXT NOT NULL,
    time_unix_nano INTEGER,
    name TEXT,
    dropped_attributes_count INTEGER NOT NULL,
    FOREIGN KEY (span_id) REFERENCES spans (span_id)
);

CREATE TABLE IF NOT EXISTS links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    span_id TEXT NOT NULL,
    trace_state TEXT,
    dropped_attributes_count INTEGER NOT NULL,
    linked_trace_id TEXT NOT NULL,
    linked_span_id TEXT NOT NULL,
    FOREIGN KEY (span_id) REFERENCES spans (span_id)
);

CREATE TABLE IF NOT EXISTS scope_attributes (
    scope_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB,
    type TEXT NOT NULL,
    FOREIGN KEY (scope_id) REFERENCES scopes (id)
);

-- One row per span attribute, clustered by (segment, span) so a batch writes one region
-- and a span's attributes sit together.
CREATE TABLE IF NOT EXISTS span_attributes (
    span_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB,
    type TEXT NOT NULL,
    bucket INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, span_id, key),
    FOREIGN KEY (span_id) REFERENCES spans (span_id)
) WITHOUT ROWID;

-- One row per distinct resource attribute (key, type, value); resource_id is a hash of
-- the three (16 hex digits).
CREATE TABLE IF NOT EXISTS resource_attributes (
    resource_id TEXT NOT NULL PRIMARY KEY,
    key TEXT NOT NULL,
    value BLOB,
    type TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS event_attributes (
    event_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB,
    type TEXT NOT NULL,
    FOREIGN KEY (event_id) REFERENCES events (id)
);

CREATE TABLE IF NOT EXISTS link_attributes (
    link_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB,
    type TEXT NOT NULL,
    FOREIGN KEY (link_id) REFERENCES links (id)
);

-- Added: a resource (its attribute list) once, however many spans carry it;
-- spans.resource_set_id points here. resource_set_id is a hash of the list (16 hex digits).
CREATE TABLE IF NOT EXISTS resource_set_members (
    resource_set_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    resource_attribute_id TEXT NOT NULL,
    PRIMARY KEY (resource_set_id, position),
    FOREIGN KEY (resource_attribute_id) REFERENCES resource_attributes (resource_id)
) WITHOUT ROWID;

-- The Teletrace link table, derived: every span with each attribute of its resource.
-- A view, so ingestion does not write five rows (and their indexes) per span.
CREATE VIEW IF NOT EXISTS span_resource_attributes (id, span_id, resource_attribute_id) AS
    SELECT s.rowid * 65536 + m.position, s.span_id, m.resource_attribute_id
    FROM spans AS s JOIN resource_set_members AS m ON m.resource_set_id = s.resource_set_id;

-- Added: ingestion segments and the range of span start times each holds.
CREATE TABLE IF NOT EXISTS segments (
    bucket INTEGER PRIMARY KEY,
    min_start_time_unix_nano INTEGER NOT NULL,
    max_start_time_unix_nano INTEGER NOT NULL,
    spans INTEGER NOT NULL
);

-- Added: every (source, key, type) written, so listing tags scans no attribute table.
-- source is one of span, resource, scope, event, link.
CREATE TABLE IF NOT EXISTS attribute_keys (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    PRIMARY KEY (source, key, type)
) WITHOUT ROWID;

-- The Teletrace indexes. span_id follows the sort key so sorting and paging need no
-- extra sort; bucket and resource_set_id let a search walking them in order check
-- attribute and resource filters without reading the span rows.
CREATE INDEX IF NOT EXISTS start_time_index
    ON spans (start_time_unix_nano, span_id, bucket, resource_set_id);
CREATE INDEX IF NOT EXISTS end_time_index ON spans (end_time_unix_nano);
CREATE INDEX IF NOT EXISTS duration_index ON spans (duration, span_id, bucket, resource_set_id);

-- What the Teletrace layout lacked.
CREATE INDEX IF NOT EXISTS trace_id_index ON spans (bucket, trace_id, start_time_unix_nano);
CREATE INDEX IF NOT EXISTS parent_span_id_index ON spans (bucket, parent_span_id);
CREATE INDEX IF NOT EXISTS spans_resource_set_index ON spans (resource_set_id);
CREATE INDEX IF NOT EXISTS span_attributes_key_value_index
    ON span_attributes (bucket, key, value, type);
CREATE INDEX IF NOT EXISTS resource_attributes_key_value_index
    ON resource_attributes (key, value, type);
CREATE INDEX IF NOT EXISTS resource_set_members_attribute_index
    ON resource_set_members (resource_attribute_id);
CREATE UNIQUE INDEX IF NOT EXISTS scope_attributes_scope_index ON scope_attributes (scope_id, key);
CREATE INDEX IF NOT EXISTS scope_attributes_key_value_index
    ON scope_attributes (key, value, type);
CREATE INDEX IF NOT EXISTS events_span_id_index ON events (span_id);
CREATE INDEX IF NOT EXISTS event_attributes_event_index ON event_attributes (event_id);
CREATE INDEX IF NOT EXISTS event_attributes_key_value_index
    ON event_attributes (key, value, type);
CREATE INDEX IF NOT EXISTS links_span_id_index ON links (span_id);
CREATE INDEX IF NOT EXISTS link_attributes_link_index ON link_attributes (link_id);
CREATE INDEX IF NOT EXISTS link_attributes_key_value_index
    ON link_attributes (key, value, type);
