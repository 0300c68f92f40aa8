-- 0003_newest_score_feedback: a score or feedback replaces the stored one of its id
-- only with an equal or later timestamp, as on DuckDB, so that a replayed older
-- record never overwrites a newer one and an id is one row. 0001 keyed these tables
-- by (trace_id, timestamp, id), so that records of one id with two timestamps were two
-- rows. They are rebuilt, with the same columns, as ReplacingMergeTree(timestamp)
-- ordered by (trace_id, id), the way 0002 rebuilt spans (new table swapped in, old
-- rows copied, old table dropped; guarded). Without a partition: a record's timestamp
-- may change, and rows in two partitions never merge. TTL then deletes expired rows in
-- merges (ttl_only_drop_parts = 0): there are no whole-day parts to drop.
-- feedback.value now holds the value as text, as on DuckDB: a string as itself (0001
-- stored its JSON text), a number as its JSON text; the copy converts old rows.

-- name: create_scores_swap
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "scores"}}' AND sorting_key = 'trace_id, score_id'
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "scores_swap"}} {{.OnCluster}} AS {{.DB}}.{{local "scores"}}
ENGINE = {{engine "ReplacingMergeTree" "timestamp"}}
PARTITION BY tuple()
ORDER BY (trace_id, score_id)
{{ttl "scores" "timestamp"}}
{{settingsRowTTL}};

-- name: exchange_scores
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "scores"}}' AND sorting_key = 'trace_id, score_id'
EXCHANGE TABLES {{.DB}}.{{local "scores"}} AND {{.DB}}.{{local "scores_swap"}} {{.OnCluster}};

-- name: copy_scores
-- unless: SELECT toUInt64(count() = 0) FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "scores_swap"}}'
INSERT INTO {{.DB}}.scores
SELECT *
FROM {{if .Cluster}}cluster({{.ClusterLit}}, {{.DBLit}}, 'scores_swap_local'){{else}}{{.DB}}.scores_swap{{end}}
SETTINGS insert_deduplicate = 0;

-- name: drop_scores_swap
DROP TABLE IF EXISTS {{.DB}}.{{local "scores_swap"}} {{.OnCluster}} SYNC;

-- name: create_feedback_swap
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "feedback"}}' AND sorting_key = 'trace_id, feedback_id'
CREATE TABLE IF NOT EXISTS {{.DB}}.{{local "feedback_swap"}} {{.OnCluster}} AS {{.DB}}.{{local "feedback"}}
ENGINE = {{engine "ReplacingMergeTree" "timestamp"}}
PARTITION BY tuple()
ORDER BY (trace_id, feedback_id)
{{ttl "feedback" "timestamp"}}
{{settingsRowTTL}};

-- name: exchange_feedback
-- unless: SELECT count() FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "feedback"}}' AND sorting_key = 'trace_id, feedback_id'
EXCHANGE TABLES {{.DB}}.{{local "feedback"}} AND {{.DB}}.{{local "feedback_swap"}} {{.OnCluster}};

-- name: copy_feedback
-- unless: SELECT toUInt64(count() = 0) FROM system.tables WHERE database = {{.DBLit}} AND name = '{{local "feedback_swap"}}'
INSERT INTO {{.DB}}.feedback
SELECT * REPLACE (if(startsWith(value, '"'), value_string, value) AS value)
FROM {{if .Cluster}}cluster({{.ClusterLit}}, {{.DBLit}}, 'feedback_swap_local'){{else}}{{.DB}}.feedback_swap{{end}}
SETTINGS insert_deduplicate = 0;

-- name: drop_feedback_swap
DROP TABLE IF EXISTS {{.DB}}.{{local "feedback_swap"}} {{.OnCluster}} SYNC;
