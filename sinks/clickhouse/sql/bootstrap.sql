-- Bootstrap: the database and the table that records applied migrations. Both
-- statements are idempotent and run before every migration pass.

-- name: create_database
CREATE DATABASE IF NOT EXISTS {{.DB}} {{.OnCluster}};

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS {{.DB}}.spanpipe_migrations {{.OnCluster}}
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{engine "ReplacingMergeTree" "applied_at"}}
ORDER BY version;
