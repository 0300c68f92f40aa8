-- 0001_init: one table per signal, the trace_roots lookup table and the view that
-- fills it.
--
-- Rendered with text/template (see ddl.go): .DB is the database, .OnCluster is
-- empty on a single node, `local` names the table that holds the data
-- (name_local in cluster mode, where the plain name is a Distributed table over it),
-- `engine` picks the MergeTree flavour (Replicated* when configured), `ttl` renders the
-- retention clause of a signal (empty when its TTL is 0), `settings` the table SETTINGS.
--
-- Conventions: optional strings are String with '' for absent (no Nullable), JSON
-- payloads are String holding JSON text ('' when absent), times are DateTime64(9, 'UTC').
-- Every table is a ReplacingMergeTree whose ORDER BY is the identity of a row and holds
-- only values that never change for that identity, so that a redelivered row, or a
-- newer snapshot of a span, collapses with the stored one. PARTITION BY uses a value
-- that never changes for a row either (a span's start, an event's timestamp): two rows
-- with one key in two partitions would never be merged. Each statement is idempotent
-- (IF NOT EXISTS), so a migration interrupted half-way can simply be run again.

-- spans keeps one row per (trace_id, span_id): ReplacingMergeTree(version) keeps the
-- highest version when parts merge, and reads use FINAL to get that row before then.
-- ORDER BY (trace_id, span_id) is both the dedup key and the index of a trace lookup:
-- WHERE trace_id = ? reads a few granules per part through the primary key, which is
-- why there is no bloom_filter index on trace_id here (it could not skip more).
-- name: create_spans
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "spans"}} {{.OnCluster}}
(
    trace_id                 String CODEC(ZSTD(1)),
    span_id                  String CODEC(ZSTD(1)),
    version                  UInt64,
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
    inserted_at              DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_metadata_keys   mapKeys(metadata_search)   TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_metadata_values mapValues(metadata_search) TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = {{engine "ReplacingMergeTree" "version"}}
PARTITION BY toDate(started_at)
ORDER BY (trace_id, span_id)
{{ttl "spans" "started_at"}}
{{settings}};

-- trace_roots holds the root span of every trace (the span without a parent), without
-- its large payloads, ordered by start for "list recent traces". The view below copies
-- every root snapshot written to spans; ReplacingMergeTree(version) keeps the newest.
-- name: create_trace_roots
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "trace_roots"}} {{.OnCluster}}
(
    started_at               DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id                 String CODEC(ZSTD(1)),
    span_id                  String CODEC(ZSTD(1)),
    version                  UInt64,
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
    INDEX idx_trace_id   trace_id   TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_user_id    user_id    TYPE bloom_filter(0.01)  GRANULARITY 1,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01)  GRANULARITY 1,
    INDEX idx_thread_id  thread_id  TYPE bloom_filter(0.01)  GRANULARITY 1
)
ENGINE = {{engine "ReplacingMergeTree" "version"}}
PARTITION BY toDate(started_at)
ORDER BY (started_at, trace_id, span_id)
{{ttl "spans" "started_at"}}
{{settings}};

-- name: create_trace_roots_mv
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.{{local "trace_roots_mv"}} {{.OnCluster}}
TO {{.DB}}.{{local "trace_roots"}}
AS SELECT
    started_at, trace_id, span_id, version, ended_at, name, span_type,
    entity_type, entity_id, entity_name,
    user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id,
    environment, source, service_name, experiment_id, tags, metadata_search,
    error != '' AS has_error,
    is_event,
    substringUTF8(input, 1, 512) AS input_preview
FROM {{.DB}}.{{local "spans"}}
WHERE parent_span_id = '';

-- logs, metrics, scores and feedback are events: their id and timestamp never change,
-- so a redelivered record collapses with the stored one (the last written wins).
-- name: create_logs
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "logs"}} {{.OnCluster}}
(
    log_id                   String CODEC(ZSTD(1)),
    timestamp                DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id                 String CODEC(ZSTD(1)),
    span_id                  String CODEC(ZSTD(1)),
    level                    LowCardinality(String),
    message                  String CODEC(ZSTD(3)),
    data                     String CODEC(ZSTD(3)),
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
    metadata                 String CODEC(ZSTD(3)),
    inserted_at              DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = {{engine "ReplacingMergeTree" ""}}
PARTITION BY toDate(timestamp)
ORDER BY (timestamp, log_id)
{{ttl "logs" "timestamp"}}
{{settings}};

-- name: create_metrics
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "metrics"}} {{.OnCluster}}
(
    metric_id                String CODEC(ZSTD(1)),
    timestamp                DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id                 String CODEC(ZSTD(1)),
    span_id                  String CODEC(ZSTD(1)),
    name                     LowCardinality(String),
    value                    Float64 CODEC(ZSTD(1)),
    labels                   Map(LowCardinality(String), String) CODEC(ZSTD(1)),
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
    provider                 LowCardinality(String),
    model                    LowCardinality(String),
    estimated_cost           Nullable(Float64),
    cost_unit                LowCardinality(String),
    cost_metadata            String CODEC(ZSTD(3)),
    metadata                 String CODEC(ZSTD(3)),
    inserted_at              DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = {{engine "ReplacingMergeTree" ""}}
PARTITION BY toDate(timestamp)
ORDER BY (name, timestamp, metric_id)
{{ttl "metrics" "timestamp"}}
{{settings}};

-- name: create_scores
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "scores"}} {{.OnCluster}}
(
    score_id                 String CODEC(ZSTD(1)),
    timestamp                DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id                 String CODEC(ZSTD(1)),
    span_id                  String CODEC(ZSTD(1)),
    score_trace_id           String CODEC(ZSTD(1)),
    scorer_id                LowCardinality(String),
    scorer_name              LowCardinality(String),
    scorer_version           String CODEC(ZSTD(1)),
    score_source             LowCardinality(String),
    score                    Float64,
    reason                   String CODEC(ZSTD(3)),
    target_entity_type       LowCardinality(String),
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
    metadata                 String CODEC(ZSTD(3)),
    inserted_at              DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine "ReplacingMergeTree" ""}}
PARTITION BY toDate(timestamp)
ORDER BY (trace_id, timestamp, score_id)
{{ttl "scores" "timestamp"}}
{{settings}};

-- feedback.value is the JSON text of the value; value_string and value_number split it
-- by JSON kind ('' and NULL for any other kind).
-- name: create_feedback
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "feedback"}} {{.OnCluster}}
(
    feedback_id              String CODEC(ZSTD(1)),
    timestamp                DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id                 String CODEC(ZSTD(1)),
    span_id                  String CODEC(ZSTD(1)),
    feedback_source          LowCardinality(String),
    feedback_type            LowCardinality(String),
    value                    String CODEC(ZSTD(1)),
    value_string             String CODEC(ZSTD(1)),
    value_number             Nullable(Float64),
    comment                  String CODEC(ZSTD(3)),
    source_id                String CODEC(ZSTD(1)),
    feedback_user_id         String CODEC(ZSTD(1)),
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
    metadata                 String CODEC(ZSTD(3)),
    inserted_at              DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = {{engine "ReplacingMergeTree" ""}}
PARTITION BY toDate(timestamp)
ORDER BY (trace_id, timestamp, feedback_id)
{{ttl "feedback" "timestamp"}}
{{settings}};

-- Cluster mode: the Distributed tables that writes and reads go through. Spans and
-- trace roots are sharded by trace, so that every snapshot of a span, and the whole
-- trace, lands on one shard (ReplacingMergeTree collapses rows within a shard only);
-- the other signals are sharded by their id.
{{- if .Cluster}}

-- name: create_spans_distributed
CREATE TABLE IF NOT EXISTS {{.DB}}.spans {{.OnCluster}} AS {{.DB}}.spans_local
ENGINE = Distributed({{.ClusterLit}}, {{.DBLit}}, 'spans_local', cityHash64(trace_id));

-- name: create_trace_roots_distributed
CREATE TABLE IF NOT EXISTS {{.DB}}.trace_roots {{.OnCluster}} AS {{.DB}}.trace_roots_local
ENGINE = Distributed({{.ClusterLit}}, {{.DBLit}}, 'trace_roots_local', cityHash64(trace_id));

-- name: create_logs_distributed
CREATE TABLE IF NOT EXISTS {{.DB}}.logs {{.OnCluster}} AS {{.DB}}.logs_local
ENGINE = Distributed({{.ClusterLit}}, {{.DBLit}}, 'logs_local', cityHash64(log_id));

-- name: create_metrics_distributed
CREATE TABLE IF NOT EXISTS {{.DB}}.metrics {{.OnCluster}} AS {{.DB}}.metrics_local
ENGINE = Distributed({{.ClusterLit}}, {{.DBLit}}, 'metrics_local', cityHash64(metric_id));

-- name: create_scores_distributed
CREATE TABLE IF NOT EXISTS {{.DB}}.scores {{.OnCluster}} AS {{.DB}}.scores_local
ENGINE = Distributed({{.ClusterLit}}, {{.DBLit}}, 'scores_local', cityHash64(score_id));

-- name: create_feedback_distributed
CREATE TABLE IF NOT EXISTS {{.DB}}.feedback {{.OnCluster}} AS {{.DB}}.feedback_local
ENGINE = Distributed({{.ClusterLit}}, {{.DBLit}}, 'feedback_local', cityHash64(feedback_id));
{{- end}}
