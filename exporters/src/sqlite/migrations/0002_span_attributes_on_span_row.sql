-- Span attributes move onto the span row, and their key/value lookup becomes per-segment
-- posting lists.
--
-- Why: one row per span attribute, each with a key/value index entry, made ingestion
-- cost about 28 B-tree entries per span (10 attributes); SQLite could not store 50,000
-- spans/s that way on a small machine. Now a span is one row whose `attributes` column
-- holds all of them as JSON, and `span_attributes` is a view over it with the Teletrace
-- columns, so SQL reading it keeps working.
--
-- `spans.attributes`: a JSON array of `[key, type, value]`, in the span's order, the
-- first of repeated keys only. `type` is one of Str, Int, Double, Bool, Bytes, Slice,
-- Map, Empty; `value` is a string (Str), an integer (Int), a number ("NaN", "Inf",
-- "-Inf" as strings: JSON has no such numbers) (Double), true/false (Bool), lowercase
-- hex (Bytes), the JSON text of the array or map as a string (Slice, Map), null (Empty).

ALTER TABLE spans ADD COLUMN attributes TEXT NOT NULL DEFAULT '[]';

UPDATE spans SET attributes = coalesce((
    SELECT json_group_array(json_array(a.key, a.type, CASE
        WHEN a.value IS NULL THEN NULL
        WHEN a.type = 'Bool' THEN json(CASE WHEN a.value THEN 'true' ELSE 'false' END)
        WHEN a.type = 'Bytes' THEN lower(hex(a.value))
        WHEN a.type = 'Double' AND a.value > 1e308 THEN 'Inf'
        WHEN a.type = 'Double' AND a.value < -1e308 THEN '-Inf'
        ELSE a.value END))
    FROM span_attributes AS a WHERE a.bucket = spans.bucket AND a.span_id = spans.span_id
), '[]');

DROP INDEX IF EXISTS span_attributes_key_value_index;
DROP TABLE span_attributes;

-- The Teletrace table, as a view: one row per span attribute, values as the table held
-- them (booleans as 0/1, arrays and maps as JSON text, NaN as NULL), except bytes, which
-- are lowercase hex text rather than a BLOB (so the view needs no `unhex`, which SQLite
-- before 3.41, such as Debian 12's sqlite3, lacks).
CREATE VIEW span_attributes (span_id, key, value, type) AS
    SELECT s.span_id, a.value ->> 0,
        CASE a.value ->> 1
            WHEN 'Double' THEN CASE a.value ->> 2
                WHEN 'Inf' THEN 9e999 WHEN '-Inf' THEN -9e999 WHEN 'NaN' THEN NULL
                ELSE a.value ->> 2 END
            ELSE a.value ->> 2 END,
        a.value ->> 1
    FROM spans AS s, json_each(s.attributes) AS a;

-- The key/value lookup of span attributes: for every sealed segment, one row per
-- distinct (key, value, type) with the rowids of the spans having it, as a JSON array.
-- A segment is sealed (its postings written in one go, in order) once the writer has
-- moved on to the next; until then searches scan its spans. Values as in the view;
-- attributes without a value (Empty, NaN) are not listed.
CREATE TABLE span_attribute_postings (
    bucket INTEGER NOT NULL,
    key TEXT NOT NULL,
    value NOT NULL,
    type TEXT NOT NULL,
    span_rowids TEXT NOT NULL,
    PRIMARY KEY (bucket, key, value, type)
) WITHOUT ROWID;

-- 1 once the segment's postings are written; a batch written into a segment clears it
-- (and the writer seals the segment again).
ALTER TABLE segments ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
-- Bumped by every change to the segment's spans, so postings built from an older
-- snapshot are not written.
ALTER TABLE segments ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX segments_unsealed_index ON segments (bucket) WHERE sealed = 0;

-- The sort indexes carried `bucket` and `resource_set_id` so a search walking them could
-- check attribute rows without reading the span; attributes are on the span row now, so
-- they only cost index space and ingest time. `span_id` stays: sorting and paging by
-- (time, span ID) need no extra sort.
DROP INDEX start_time_index;
CREATE INDEX start_time_index ON spans (start_time_unix_nano, span_id);
DROP INDEX duration_index;
CREATE INDEX duration_index ON spans (duration, span_id);
