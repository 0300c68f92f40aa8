-- 0008_compaction_mark: compacted_seq moves to a table of its own, so that compaction
-- can run on a connection of its own while batches are written.
--
-- Every write updates spanpipe_span_state (next_seq) in its transaction. A compaction
-- that recorded its progress in the same row conflicted with any write committed
-- while it ran, so it ran on the write path and held the batches back for seconds
-- (issue 14: p99 latency). Writes never touch spanpipe_span_compaction, and
-- compaction never deletes a row a write touches: they commit independently.
CREATE TABLE spanpipe_span_compaction (
    compacted_seq BIGINT NOT NULL
);
INSERT INTO spanpipe_span_compaction SELECT compacted_seq FROM spanpipe_span_state;

CREATE OR REPLACE VIEW spanpipe_superseded_spans AS
SELECT v.seq
FROM span_versions v
WHERE EXISTS (
    SELECT 1 FROM span_versions t
    WHERE t.seq > (SELECT compacted_seq FROM spanpipe_span_compaction)
      AND t.trace_id = v.trace_id AND t.span_id = v.span_id)
QUALIFY row_number() OVER (PARTITION BY v.trace_id, v.span_id ORDER BY v.version DESC, v.rank DESC, v.seq DESC) > 1;

ALTER TABLE spanpipe_span_state DROP COLUMN compacted_seq;
