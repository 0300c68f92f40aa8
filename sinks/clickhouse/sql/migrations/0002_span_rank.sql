-- 0002_span_rank: snapshots of one span version are ordered by their event, ended >
-- updated > started (schema.Span.Rank), on spans and trace_roots, whatever the order
-- in which they arrive. ReplacingMergeTree keeps the row with the greatest version
-- column, and the last inserted one on a tie; the version column of a table cannot be
-- altered, so both tables are rebuilt with a rank column and ReplacingMergeTree over
-- ordering = (version << 8) + rank:
--   1. the view that fills trace_roots is dropped; new empty tables are created and
--      swapped in with EXCHANGE TABLES (atomic: writers go on inserting, into the new
--      table from then on); the view is created again, reading rank;
--   2. the old rows are copied into the new spans (rank 3 for a row with an end or an
--      event span, 1 otherwise: the old rows did not record their event), and
--      trace_roots is filled again from spans; copies that overlap collapse like any
--      redelivery;
--   3. the old tables are dropped.
-- Until step 2 ends, reads miss the spans written before the migration. The swaps
-- and the copies are guarded ("-- unless:"), so that running the migration again
-- after a failure redoes only what is left.
--
-- In cluster mode the swap runs ON CLUSTER on the local tables, the copy goes through
-- the Distributed table from cluster() (rows land on the shard they came from: the
-- sharding key is the trace id), and the Distributed tables get the rank column.
-- Replicated new tables keep the Keeper path they were created with (the _swap one).

-- name: drop_trace_roots_mv
-- unless: SELECT count() FROM system.columns WHERE database = {{.DBLit}} AND table = '{{local "spans"}}' AND name = 'rank'
DROP VIEW IF EXISTS {{.DB}}.{{local "trace_roots_mv"}} {{.OnCluster}} SYNC;

-- name: create_spans_swap
-- unless: SELECT count() FROM system.columns WHERE database = {{.DBLit}} AND table = '{{local "spans"}}' AND name = 'rank'
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "spans_swap"}} {{.OnCluster}}
(
    trace_id                 String CODEC(ZSTD(1)),
    span_id                  String CODEC(ZSTD(1)),
    version                  UInt64,
    rank                     UInt8,
    parent_span_id           String CODEC(ZSTD(1)),
    external_parent_span_id  String CODEC(ZSTD(1)),
    name                     String CODEC(ZSTD(1)),
    span_type                LowCardinality(String),
    entity_type              LowCardinality(String),
    entity_id                String CODEC(ZSTD(1)),
    entity_name              String CODEC(ZSTD(1)),
    entity_version_id        String CODEC(ZSTD(1)),
    parent_entity_type       LowCardinality(String),
    parent_entity_id         String CODEC(ZSTD(1)),
    parent_entity_name       String CODEC(ZSTD(1)),
    parent_entity_version_id String CODEC(ZSTD(1)),
    root_entity_type         LowCardinality(String),
    root_entity_id           String CODEC(ZSTD(1)),
    root_entity_name         String CODEC(ZSTD(1)),
    root_entity_version_id   String CODEC(ZSTD(1)),
    user_id                  String CODEC(ZSTD(1)),
    organization_id          String CODEC(ZSTD(1)),
    resource_id              String CODEC(ZSTD(1)),
    run_id                   String CODEC(ZSTD(1)),
    session_id               String CODEC(ZSTD(1)),
    thread_id                String CODEC(ZSTD(1)),
    request_id               String CODEC(ZSTD(1)),
    environment              LowCardinality(String),
    source                   LowCardinality(String),
    service_name             LowCardinality(String),
    experiment_id            String CODEC(ZSTD(1)),
    tags                     Array(LowCardinality(String)),
    started_at               DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    ended_at                 Nullable(DateTime64(9, 'UTC')) CODEC(Delta, ZSTD(1)),
    attributes               String CODEC(ZSTD(3)),
    metadata                 String CODEC(ZSTD(3)),
    -- The top-level metadata entries whose values are strings, for
    -- WHERE metadata_search['customer'] = 'acme'.
    metadata_search          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    input                    String CODEC(ZSTD(3)),
    output                   String CODEC(ZSTD(3)),
    error                    String CODEC(ZSTD(3)),
    request_context          String CODEC(ZSTD(3)),
    is_event                 Bool,
    is_root_span             Bool,
    is_internal              Bool,
    -- ordering is what ReplacingMergeTree keeps the greatest of: version, then rank.
    ordering                 UInt128 MATERIALIZED bitShiftLeft(toUInt128(version), 8) + rank,
    inserted_at              DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_metadata_keys   mapKeys(metadata_search)   TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_metadata_values mapValues(metadata_search) TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = {{engine "ReplacingMergeTree" "ordering"}}
PARTITION BY toDate(started_at)
ORDER BY (trace_id, span_id)
{{ttl "spans" "started_at"}}
{{settings}};

-- name: exchange_spans
-- unless: SELECT count() FROM system.columns WHERE database = {{.DBLit}} AND table = '{{local "spans"}}' AND name = 'rank'
EXCHANGE TABLES {{.DB}}.{{local "spans"}} AND {{.DB}}.{{local "spans_swap"}} {{.OnCluster}};

-- name: create_trace_roots_swap
-- unless: SELECT count() FROM system.columns WHERE database = {{.DBLit}} AND table = '{{local "trace_roots"}}' AND name = 'rank'
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "trace_roots_swap"}} {{.OnCluster}}
(
    started_at               DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id                 String CODEC(ZSTD(1)),
    span_id                  String CODEC(ZSTD(1)),
    version                  UInt64,
    rank                     UInt8,
    ended_at                 Nullable(DateTime64(9, 'UTC')) CODEC(Delta, ZSTD(1)),
    name                     String CODEC(ZSTD(1)),
    span_type                LowCardinality(String),
    entity_type              LowCardinality(String),
    entity_id                String CODEC(ZSTD(1)),
    entity_name              String CODEC(ZSTD(1)),
    user_id                  String CODEC(ZSTD(1)),
    organization_id          String CODEC(ZSTD(1)),
    resource_id              String CODEC(ZSTD(1)),
    run_id                   String CODEC(ZSTD(1)),
    session_id               String CODEC(ZSTD(1)),
    thread_id                String CODEC(ZSTD(1)),
    request_id               String CODEC(ZSTD(1)),
    environment              LowCardinality(String),
    source                   LowCardinality(String),
    service_name             LowCardinality(String),
    experiment_id            String CODEC(ZSTD(1)),
    tags                     Array(LowCardinality(String)),
    metadata_search          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    has_error                Bool,
    is_event                 Bool,
    input_preview            String CODEC(ZSTD(3)),
    -- ordering is what ReplacingMergeTree keeps the greatest of: version, then rank.
    ordering                 UInt128 MATERIALIZED bitShiftLeft(toUInt128(version), 8) + rank,
    INDEX idx_trace_id   trace_id   TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_user_id    user_id    TYPE bloom_filter(0.01)  GRANULARITY 1,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01)  GRANULARITY 1,
    INDEX idx_thread_id  thread_id  TYPE bloom_filter(0.01)  GRANULARITY 1
)
ENGINE = {{engine "ReplacingMergeTree" "ordering"}}
PARTITION BY toDate(started_at)
ORDER BY (started_at, trace_id, span_id)
{{ttl "spans" "started_at"}}
{{settings}};

-- name: exchange_trace_roots
-- unless: SELECT count() FROM system.columns WHERE database = {{.DBLit}} AND table = '{{local "trace_roots"}}' AND name = 'rank'
EXCHANGE TABLES {{.DB}}.{{local "trace_roots"}} AND {{.DB}}.{{local "trace_roots_swap"}} {{.OnCluster}};

-- name: recreate_trace_roots_mv
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.{{local "trace_roots_mv"}} {{.OnCluster}}
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
{{- if .Cluster}}

-- name: add_rank_spans_distributed
ALTER TABLE {{.DB}}.spans {{.OnCluster}} ADD COLUMN IF NOT EXISTS rank UInt8 AFTER version;

-- name: add_rank_trace_roots_distributed
ALTER TABLE {{.DB}}.trace_roots {{.OnCluster}} ADD COLUMN IF NOT EXISTS rank UInt8 AFTER version;
{{- end}}

-- name: copy_spans
-- unless: SELECT count() = 0 FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "spans_swap"}}'
INSERT INTO {{.DB}}.spans (trace_id, span_id, version, rank, parent_span_id, external_parent_span_id, name, span_type, entity_type, entity_id, entity_name, entity_version_id, parent_entity_type, parent_entity_id, parent_entity_name, parent_entity_version_id, root_entity_type, root_entity_id, root_entity_name, root_entity_version_id, user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id, environment, source, service_name, experiment_id, tags, started_at, ended_at, attributes, metadata, metadata_search, input, output, error, request_context, is_event, is_root_span, is_internal)
SELECT trace_id, span_id, version, if(is_event OR ended_at IS NOT NULL, 3, 1), parent_span_id, external_parent_span_id, name, span_type, entity_type, entity_id, entity_name, entity_version_id, parent_entity_type, parent_entity_id, parent_entity_name, parent_entity_version_id, root_entity_type, root_entity_id, root_entity_name, root_entity_version_id, user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id, environment, source, service_name, experiment_id, tags, started_at, ended_at, attributes, metadata, metadata_search, input, output, error, request_context, is_event, is_root_span, is_internal
FROM {{if .Cluster}}cluster({{.ClusterLit}}, {{.DBLit}}, 'spans_swap_local'){{else}}{{.DB}}.spans_swap{{end}}
SETTINGS insert_deduplicate = 0;

-- name: drop_spans_swap
DROP TABLE IF EXISTS {{.DB}}.{{local "spans_swap"}} {{.OnCluster}} SYNC;

-- name: refill_trace_roots
-- unless: SELECT count() = 0 FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "trace_roots_swap"}}'
INSERT INTO {{.DB}}.trace_roots (started_at, trace_id, span_id, version, rank, ended_at, name, span_type, entity_type, entity_id, entity_name, user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id, environment, source, service_name, experiment_id, tags, metadata_search, has_error, is_event, input_preview)
SELECT started_at, trace_id, span_id, version, rank, ended_at, name, span_type,
    entity_type, entity_id, entity_name,
    user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id,
    environment, source, service_name, experiment_id, tags, metadata_search,
    error != '' AS has_error,
    is_event,
    substringUTF8(input, 1, 512) AS input_preview
FROM {{.DB}}.spans
WHERE parent_span_id = ''
SETTINGS insert_deduplicate = 0;

-- name: drop_trace_roots_swap
DROP TABLE IF EXISTS {{.DB}}.{{local "trace_roots_swap"}} {{.OnCluster}} SYNC;
