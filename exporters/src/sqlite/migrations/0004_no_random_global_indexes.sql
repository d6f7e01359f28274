-- No index whose every insert lands at a random place in the whole index.
--
-- Why: span IDs are random (W3C), and so are durations. An index keyed by either puts
-- each batch's entries all over it: once it outgrows a batch, nearly every page is
-- dirtied by every commit and written to the WAL again, so ingestion slows as the
-- database grows. With random span IDs, the `span_id` primary key and `duration_index`
-- made a commit of 8,192 spans into a store of 1,000,000 write about 30 MiB to the WAL
-- for 7 MiB of spans (BENCHMARKS.md).
--
-- - `spans.span_id` is no longer the primary key. A span ID is looked up per segment
--   (`span_id_index`, leading with `bucket`, like the trace and parent indexes), and a
--   span stored again (a client retrying) is recognised by its start time and span ID
--   (`span_identity_index`, which grows at its end as time goes on): a retry resends
--   the same span, start time included.
-- - `duration_index` leads with `bucket` too: a batch's entries go into its segment's
--   region. Sorting by duration merges the segments' orders (the reader does that).
--
-- SQLite cannot drop a primary key in place, so `spans` is rebuilt, rowids kept
-- (postings and paging tokens hold them). `events` and `links` are rebuilt without
-- their foreign key on `spans (span_id)`, which needs a unique parent key: with foreign
-- keys enforced, a tool would otherwise get "foreign key mismatch". The views over
-- `spans` are dropped first and made again after, unchanged.

DROP VIEW span_attributes;
DROP VIEW span_resource_attributes;

CREATE TABLE spans_rebuilt (
    span_id TEXT NOT NULL CHECK (length(span_id) = 16),
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
    bucket INTEGER NOT NULL DEFAULT 0,
    resource_set_id TEXT,
    attributes TEXT NOT NULL DEFAULT '[]',
    FOREIGN KEY (instrumentation_scope_id) REFERENCES scopes (id)
);
INSERT INTO spans_rebuilt (rowid, span_id, trace_id, trace_state, parent_span_id, name, kind,
    start_time_unix_nano, end_time_unix_nano, dropped_span_attributes_count,
    span_status_message, span_status_code, dropped_resource_attributes_count,
    dropped_events_count, dropped_links_count, duration, ingestion_time_unix_nano,
    instrumentation_scope_id, bucket, resource_set_id, attributes)
SELECT rowid, span_id, trace_id, trace_state, parent_span_id, name, kind,
    start_time_unix_nano, end_time_unix_nano, dropped_span_attributes_count,
    span_status_message, span_status_code, dropped_resource_attributes_count,
    dropped_events_count, dropped_links_count, duration, ingestion_time_unix_nano,
    instrumentation_scope_id, bucket, resource_set_id, attributes
FROM spans ORDER BY rowid;
DROP TABLE spans;
ALTER TABLE spans_rebuilt RENAME TO spans;

CREATE INDEX start_time_index ON spans (start_time_unix_nano);
CREATE INDEX end_time_index ON spans (end_time_unix_nano);
CREATE INDEX duration_index ON spans (bucket, duration);
CREATE UNIQUE INDEX span_identity_index ON spans (start_time_unix_nano, span_id);
CREATE INDEX span_id_index ON spans (bucket, span_id);
CREATE INDEX trace_id_index ON spans (bucket, trace_id, start_time_unix_nano);
CREATE INDEX parent_span_id_index ON spans (bucket, parent_span_id);
CREATE INDEX spans_resource_set_index ON spans (resource_set_id);

CREATE TABLE events_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    span_id TEXT NOT NULL,
    time_unix_nano INTEGER,
    name TEXT,
    dropped_attributes_count INTEGER NOT NULL
);
INSERT INTO events_rebuilt (id, span_id, time_unix_nano, name, dropped_attributes_count)
SELECT id, span_id, time_unix_nano, name, dropped_attributes_count FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;
CREATE INDEX events_span_id_index ON events (span_id);

CREATE TABLE links_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    span_id TEXT NOT NULL,
    trace_state TEXT,
    dropped_attributes_count INTEGER NOT NULL,
    linked_trace_id TEXT NOT NULL,
    linked_span_id TEXT NOT NULL
);
INSERT INTO links_rebuilt (id, span_id, trace_state, dropped_attributes_count,
    linked_trace_id, linked_span_id)
SELECT id, span_id, trace_state, dropped_attributes_count, linked_trace_id, linked_span_id
FROM links ORDER BY id;
DROP TABLE links;
ALTER TABLE links_rebuilt RENAME TO links;
CREATE INDEX links_span_id_index ON links (span_id);

CREATE VIEW span_resource_attributes (id, span_id, resource_attribute_id) AS
    SELECT s.rowid * 65536 + m.position, s.span_id, m.resource_attribute_id
    FROM spans AS s JOIN resource_set_members AS m ON m.resource_set_id = s.resource_set_id;

CREATE VIEW span_attributes (span_id, key, value, type) AS
    SELECT s.span_id, a.value ->> 0,
        CASE a.value ->> 1
            WHEN 'Double' THEN CASE a.value ->> 2
                WHEN 'Inf' THEN 9e999 WHEN '-Inf' THEN -9e999 WHEN 'NaN' THEN NULL
                ELSE a.value ->> 2 END
            ELSE a.value ->> 2 END,
        a.value ->> 1
    FROM spans AS s, json_each(s.attributes) AS a;
