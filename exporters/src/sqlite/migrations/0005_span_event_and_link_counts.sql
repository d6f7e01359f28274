-- How many events and links each span row has in `events` and `links`.
--
-- Why: reading a trace looked for each span's events and links with two `EXISTS`
-- probes per span (an index seek each into `events_span_id_index` and
-- `links_span_id_index`), though most spans have neither. The counts are known when the
-- span is stored, in the same transaction as its events and links, so the reader asks
-- `events` and `links` only for the spans that have some.
--
-- Rows stored before this migration keep NULL ("not counted"); the reader probes for
-- those as before, so no existing row needs rewriting at start.
ALTER TABLE spans ADD COLUMN event_count INTEGER;
ALTER TABLE spans ADD COLUMN link_count INTEGER;
