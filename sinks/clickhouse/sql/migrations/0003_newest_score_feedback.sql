-- 0003_newest_score_feedback: a score or feedback replaces the stored one of its id
-- only with an equal or later timestamp, as on DuckDB, so that a replayed older
-- record never overwrites a newer one and an id is one row. 0001 keyed these tables
-- by (trace_id, timestamp, id), so that records of one id with two timestamps were two
-- rows. They are rebuilt as ReplacingMergeTree(timestamp) ordered by (trace_id, id),
-- the way 0002 rebuilt spans (new table swapped in, old rows copied, old table
-- dropped; guarded). Without a partition: a record's timestamp may change, and rows in
-- two partitions never merge. TTL then deletes expired rows in merges
-- (ttl_only_drop_parts = 0): there are no whole-day parts to drop.
-- feedback.value now holds the value as text, as on DuckDB: a string as itself (0001
-- stored its JSON text), a number as its JSON text; the copy converts old rows.

-- name: create_scores_swap
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "scores"}}' AND sorting_key = 'trace_id, score_id'
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "scores_swap"}} {{.OnCluster}}
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
ENGINE = {{engine "ReplacingMergeTree" "timestamp"}}
ORDER BY (trace_id, score_id)
{{ttl "scores" "timestamp"}}
{{settingsRowTTL}};

-- name: exchange_scores
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "scores"}}' AND sorting_key = 'trace_id, score_id'
EXCHANGE TABLES {{.DB}}.{{local "scores"}} AND {{.DB}}.{{local "scores_swap"}} {{.OnCluster}};

-- name: copy_scores
-- unless: SELECT count() = 0 FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "scores_swap"}}'
INSERT INTO {{.DB}}.scores (score_id, timestamp, trace_id, span_id, score_trace_id, scorer_id, scorer_name, scorer_version, score_source, score, reason, target_entity_type, entity_type, entity_id, entity_name, entity_version_id, parent_entity_type, parent_entity_id, parent_entity_name, parent_entity_version_id, root_entity_type, root_entity_id, root_entity_name, root_entity_version_id, user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id, environment, source, service_name, experiment_id, tags, metadata)
SELECT score_id, timestamp, trace_id, span_id, score_trace_id, scorer_id, scorer_name, scorer_version, score_source, score, reason, target_entity_type, entity_type, entity_id, entity_name, entity_version_id, parent_entity_type, parent_entity_id, parent_entity_name, parent_entity_version_id, root_entity_type, root_entity_id, root_entity_name, root_entity_version_id, user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id, environment, source, service_name, experiment_id, tags, metadata
FROM {{if .Cluster}}cluster({{.ClusterLit}}, {{.DBLit}}, 'scores_swap_local'){{else}}{{.DB}}.scores_swap{{end}}
SETTINGS insert_deduplicate = 0;

-- name: drop_scores_swap
DROP TABLE IF EXISTS {{.DB}}.{{local "scores_swap"}} {{.OnCluster}} SYNC;

-- name: create_feedback_swap
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "feedback"}}' AND sorting_key = 'trace_id, feedback_id'
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "feedback_swap"}} {{.OnCluster}}
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
ENGINE = {{engine "ReplacingMergeTree" "timestamp"}}
ORDER BY (trace_id, feedback_id)
{{ttl "feedback" "timestamp"}}
{{settingsRowTTL}};

-- name: exchange_feedback
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "feedback"}}' AND sorting_key = 'trace_id, feedback_id'
EXCHANGE TABLES {{.DB}}.{{local "feedback"}} AND {{.DB}}.{{local "feedback_swap"}} {{.OnCluster}};

-- name: copy_feedback
-- unless: SELECT count() = 0 FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "feedback_swap"}}'
INSERT INTO {{.DB}}.feedback (feedback_id, timestamp, trace_id, span_id, feedback_source, feedback_type, value, value_string, value_number, comment, source_id, feedback_user_id, entity_type, entity_id, entity_name, entity_version_id, parent_entity_type, parent_entity_id, parent_entity_name, parent_entity_version_id, root_entity_type, root_entity_id, root_entity_name, root_entity_version_id, user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id, environment, source, service_name, experiment_id, tags, metadata)
SELECT feedback_id, timestamp, trace_id, span_id, feedback_source, feedback_type, if(startsWith(value, '"'), value_string, value), value_string, value_number, comment, source_id, feedback_user_id, entity_type, entity_id, entity_name, entity_version_id, parent_entity_type, parent_entity_id, parent_entity_name, parent_entity_version_id, root_entity_type, root_entity_id, root_entity_name, root_entity_version_id, user_id, organization_id, resource_id, run_id, session_id, thread_id, request_id, environment, source, service_name, experiment_id, tags, metadata
FROM {{if .Cluster}}cluster({{.ClusterLit}}, {{.DBLit}}, 'feedback_swap_local'){{else}}{{.DB}}.feedback_swap{{end}}
SETTINGS insert_deduplicate = 0;

-- name: drop_feedback_swap
DROP TABLE IF EXISTS {{.DB}}.{{local "feedback_swap"}} {{.OnCluster}} SYNC;
