-- 0002_span_rank: snapshots of one span version are ordered by their event, ended >
-- updated > started (schema.Span.Rank), on spans and trace_roots, whatever the order
-- in which they arrive. ReplacingMergeTree keeps the row with the greatest version
-- column, and the last inserted one on a tie; the version column of a table cannot be
-- altered, so both tables are rebuilt with ReplacingMergeTree over
-- ordering = (version << 8) + rank:
--   1. rank and ordering are added to the old tables (metadata only): rank of an old
--      row, which did not record its event, is 3 for a row with an end or an event
--      span and 1 otherwise;
--   2. new empty tables AS the old ones, with the new engine, are swapped in with
--      EXCHANGE TABLES (atomic: writers go on inserting, into the new table from then
--      on); the view that fills trace_roots is replaced by one that copies rank (the
--      old one keeps working until then: both select from spans by name);
--   3. the old spans rows are copied into the new table, which fills trace_roots
--      through the view (copies that overlap collapse like any redelivery), and the
--      old tables are dropped.
-- Until step 3 ends, reads miss the spans written before the migration. The swaps
-- and the copy are guarded ("-- unless:"), so that running the migration again after
-- a failure redoes only what is left.
--
-- In cluster mode the statements run ON CLUSTER on the local tables, the copy goes
-- through the Distributed table from cluster() (rows land on the shard they came
-- from: the sharding key is the trace id), and the Distributed tables get rank.
-- Replicated new tables keep the Keeper path they were created with (the _swap one).

-- name: add_rank_spans
ALTER TABLE {{.DB}}.{{local "spans"}} {{.OnCluster}} ADD COLUMN IF NOT EXISTS rank UInt8 DEFAULT if(is_event OR ended_at IS NOT NULL, 3, 1) AFTER version, ADD COLUMN IF NOT EXISTS ordering UInt128 MATERIALIZED bitShiftLeft(toUInt128(version), 8) + rank;

-- name: create_spans_swap
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "spans"}}' AND match(engine_full, 'ReplacingMergeTree\\(([^)]*, )?ordering\\)')
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "spans_swap"}} {{.OnCluster}} AS {{.DB}}.{{local "spans"}}
ENGINE = {{engine "ReplacingMergeTree" "ordering"}}
PARTITION BY toDate(started_at)
ORDER BY (trace_id, span_id)
{{ttl "spans" "started_at"}}
{{settings}};

-- name: exchange_spans
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "spans"}}' AND match(engine_full, 'ReplacingMergeTree\\(([^)]*, )?ordering\\)')
EXCHANGE TABLES {{.DB}}.{{local "spans"}} AND {{.DB}}.{{local "spans_swap"}} {{.OnCluster}};

-- name: add_rank_trace_roots
ALTER TABLE {{.DB}}.{{local "trace_roots"}} {{.OnCluster}} ADD COLUMN IF NOT EXISTS rank UInt8 DEFAULT if(is_event OR ended_at IS NOT NULL, 3, 1) AFTER version, ADD COLUMN IF NOT EXISTS ordering UInt128 MATERIALIZED bitShiftLeft(toUInt128(version), 8) + rank;

-- name: create_trace_roots_swap
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "trace_roots"}}' AND match(engine_full, 'ReplacingMergeTree\\(([^)]*, )?ordering\\)')
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "trace_roots_swap"}} {{.OnCluster}} AS {{.DB}}.{{local "trace_roots"}}
ENGINE = {{engine "ReplacingMergeTree" "ordering"}}
PARTITION BY toDate(started_at)
ORDER BY (started_at, trace_id, span_id)
{{ttl "spans" "started_at"}}
{{settings}};

-- name: exchange_trace_roots
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "trace_roots"}}' AND match(engine_full, 'ReplacingMergeTree\\(([^)]*, )?ordering\\)')
EXCHANGE TABLES {{.DB}}.{{local "trace_roots"}} AND {{.DB}}.{{local "trace_roots_swap"}} {{.OnCluster}};

-- name: create_trace_roots_rank_mv
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.{{local "trace_roots_rank_mv"}} {{.OnCluster}}
TO {{.DB}}.{{local "trace_roots"}}
AS SELECT
    started_at, trace_id, span_id, version, rank, ended_at, name, span_type,
    entity_type, entity_id, entity_name,
    user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id,
    environment, source, service_name, experiment_id, tags, metadata_search,
    error != '' AS has_error,
    is_event,
    substringUTF8(input, 1, 512) AS input_preview
FROM {{.DB}}.{{local "spans"}}
WHERE parent_span_id = '';

-- name: drop_trace_roots_mv
DROP VIEW IF EXISTS {{.DB}}.{{local "trace_roots_mv"}} {{.OnCluster}} SYNC;
{{- if .Cluster}}

-- name: add_rank_spans_distributed
ALTER TABLE {{.DB}}.spans {{.OnCluster}} ADD COLUMN IF NOT EXISTS rank UInt8 AFTER version;

-- name: add_rank_trace_roots_distributed
ALTER TABLE {{.DB}}.trace_roots {{.OnCluster}} ADD COLUMN IF NOT EXISTS rank UInt8 AFTER version;
{{- end}}

-- name: copy_spans
-- unless: SELECT toUInt64(count() = 0) FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "spans_swap"}}'
INSERT INTO {{.DB}}.spans
SELECT *
FROM {{if .Cluster}}cluster({{.ClusterLit}}, {{.DBLit}}, 'spans_swap_local'){{else}}{{.DB}}.spans_swap{{end}}
SETTINGS insert_deduplicate = 0;

-- name: drop_spans_swap
DROP TABLE IF EXISTS {{.DB}}.{{local "spans_swap"}} {{.OnCluster}} SYNC;

-- name: drop_trace_roots_swap
DROP TABLE IF EXISTS {{.DB}}.{{local "trace_roots_swap"}} {{.OnCluster}} SYNC;
