-- 0004_metadata_search_default: the server derives metadata_search from metadata
-- when an INSERT leaves it out, and the writer now does. Extracting the entries in the
-- consumer and sending them through the driver's Map column (reflection and an
-- allocation per key and value) was the largest cost of converting a span row;
-- ClickHouse's JSON functions do it for a fraction of that, once, next to the data.
-- The entries are those the writer extracted: the top-level string values of a
-- metadata object, non-empty and unescaped; nothing for invalid JSON or a non-object.
-- Values over 1024 bytes (pasted documents, not identifiers) are left out rather than
-- truncated, so that an equality search never matches a prefix. A writer of an older
-- release that still sends the column keeps working. The trace_roots view sees the
-- computed column, as it sees every column of the inserted block. In cluster mode the
-- Distributed table computes the DEFAULT before it forwards the rows, so it gets the
-- expression too. Changing a DEFAULT is metadata only, and idempotent.

-- name: metadata_search_default
ALTER TABLE {{.DB}}.{{local "spans"}} {{.OnCluster}} MODIFY COLUMN metadata_search Map(LowCardinality(String), String) DEFAULT {{template "metadata_search"}} CODEC(ZSTD(1));
{{- if .Cluster}}

-- name: metadata_search_default_distributed
ALTER TABLE {{.DB}}.spans {{.OnCluster}} MODIFY COLUMN metadata_search Map(LowCardinality(String), String) DEFAULT {{template "metadata_search"}};
{{- end}}
{{- define "metadata_search"}}CAST(arrayFilter(kv -> kv.2 != '' AND length(kv.2) <= 1024, arrayMap(kv -> (kv.1, JSONExtractString(kv.2)), arrayFilter(kv -> startsWith(kv.2, '"'), JSONExtractKeysAndValuesRaw(metadata)))), 'Map(LowCardinality(String), String)'){{end}}
