-- 0010_span_key_hash: span_versions gets key_hash, a 64-bit hash of (trace_id,
-- span_id), so that compaction finds the spans with more than one version by
-- scanning one 8-byte column instead of both key strings.
--
-- Compaction read the key columns of the whole table every 100k rows or a tenth of
-- the table and hashed the tail's keys as strings: the writer's memory grew with the
-- table (issue 14: the writer alone, 2M spans, 141 MB peak RSS over the first 200k
-- spans, 234 MB over the last; 169 MB with compaction turned off). Now it first
-- looks for hashes with two rows or more, which insert-only mostly has none of, and
-- ranks versions by their keys only from the oldest seq of those. A collision only
-- makes two spans candidates: the ranking still partitions by the keys.
--
-- The writer computes the same value in Go (spanKeyHash): the first 8 bytes of the
-- MD5 of trace_id, '/', span_id, big-endian. MD5 and the hex cast are fixed, where
-- DuckDB's hash() may change between releases, and a hash that changed would miss
-- the older versions of a span.
ALTER TABLE span_versions ADD COLUMN key_hash UBIGINT;
UPDATE span_versions SET key_hash = ('0x' || left(md5(trace_id || '/' || span_id), 16))::UBIGINT;

CREATE OR REPLACE VIEW spans AS
SELECT * EXCLUDE (rank, seq, created_at, updated_at, key_hash), created_at, updated_at, rank
FROM span_versions v
WHERE NOT EXISTS (SELECT 1 FROM spanpipe_superseded_spans s WHERE s.seq = v.seq);
