-- The sort indexes end in the rowid (every SQLite index does) instead of the span ID.
-- Paging breaks ties in the sort value by rowid, which needs nothing more. With the span
-- ID in it, the duration index was twice the size, and since durations arrive in random
-- order, each batch of 8,192 spans dirtied most of its pages: every commit wrote nearly
-- the whole index to the WAL again. Loading 1,000,000 spans went from 27,000 to 34,400
-- spans/s with this change (BENCHMARKS.md).
DROP INDEX start_time_index;
CREATE INDEX start_time_index ON spans (start_time_unix_nano);
DROP INDEX duration_index;
CREATE INDEX duration_index ON spans (duration);
