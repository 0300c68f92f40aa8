-- The five base tables of @mastra/clickhouse 1.16.0 (ObservabilityStorageClickhouseVNext), as its
-- init() created them on ClickHouse 26.9 (SHOW CREATE TABLE, with the database as {{db}}).
-- spanpipe never runs this: Mastra owns its DDL. The sink's tests create these tables to
-- write into without Node; integration/mastra_studio_test.go runs the real init().

CREATE TABLE {{db}}.mastra_span_events
(
    `dedupeKey` String,
    `traceId` String,
    `spanId` String,
    `parentSpanId` Nullable(String),
    `experimentId` Nullable(String),
    `entityType` LowCardinality(Nullable(String)),
    `entityId` Nullable(String),
    `entityName` Nullable(String),
    `entityVersionId` Nullable(String),
    `parentEntityVersionId` Nullable(String),
    `parentEntityType` LowCardinality(Nullable(String)),
    `parentEntityId` Nullable(String),
    `parentEntityName` Nullable(String),
    `rootEntityVersionId` Nullable(String),
    `rootEntityType` LowCardinality(Nullable(String)),
    `rootEntityId` Nullable(String),
    `rootEntityName` Nullable(String),
    `userId` Nullable(String),
    `organizationId` Nullable(String),
    `resourceId` Nullable(String),
    `runId` Nullable(String),
    `sessionId` Nullable(String),
    `threadId` Nullable(String),
    `requestId` Nullable(String),
    `environment` LowCardinality(Nullable(String)),
    `executionSource` LowCardinality(Nullable(String)),
    `serviceName` LowCardinality(Nullable(String)),
    `name` String,
    `spanType` LowCardinality(String),
    `isEvent` Bool DEFAULT false,
    `startedAt` DateTime64(3, 'UTC'),
    `endedAt` DateTime64(3, 'UTC'),
    `tags` Array(LowCardinality(String)) DEFAULT [],
    `metadataSearch` Map(LowCardinality(String), String) DEFAULT map(),
    `attributes` Nullable(String),
    `scope` Nullable(String),
    `links` Nullable(String),
    `input` Nullable(String),
    `output` Nullable(String),
    `error` Nullable(String),
    `metadataRaw` Nullable(String),
    `requestContext` Nullable(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(endedAt)
ORDER BY (traceId, endedAt, spanId, dedupeKey)
SETTINGS index_granularity = 8192
;

CREATE TABLE {{db}}.mastra_log_events
(
    `timestamp` DateTime64(3, 'UTC'),
    `logId` String,
    `traceId` Nullable(String),
    `spanId` Nullable(String),
    `experimentId` Nullable(String),
    `entityType` LowCardinality(Nullable(String)),
    `entityId` Nullable(String),
    `entityName` Nullable(String),
    `entityVersionId` Nullable(String),
    `parentEntityVersionId` Nullable(String),
    `parentEntityType` LowCardinality(Nullable(String)),
    `parentEntityId` Nullable(String),
    `parentEntityName` Nullable(String),
    `rootEntityVersionId` Nullable(String),
    `rootEntityType` LowCardinality(Nullable(String)),
    `rootEntityId` Nullable(String),
    `rootEntityName` Nullable(String),
    `userId` Nullable(String),
    `organizationId` Nullable(String),
    `resourceId` Nullable(String),
    `runId` Nullable(String),
    `sessionId` Nullable(String),
    `threadId` Nullable(String),
    `requestId` Nullable(String),
    `environment` LowCardinality(Nullable(String)),
    `executionSource` LowCardinality(Nullable(String)),
    `serviceName` LowCardinality(Nullable(String)),
    `level` LowCardinality(String),
    `message` String,
    `tags` Array(LowCardinality(String)) DEFAULT [],
    `data` Nullable(String),
    `metadata` Nullable(String),
    `scope` Nullable(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (timestamp, logId)
SETTINGS index_granularity = 8192
;

CREATE TABLE {{db}}.mastra_metric_events
(
    `timestamp` DateTime64(3, 'UTC'),
    `metricId` String,
    `traceId` Nullable(String),
    `spanId` Nullable(String),
    `experimentId` Nullable(String),
    `entityType` LowCardinality(Nullable(String)),
    `entityId` Nullable(String),
    `entityName` Nullable(String),
    `entityVersionId` Nullable(String),
    `parentEntityVersionId` Nullable(String),
    `parentEntityType` LowCardinality(Nullable(String)),
    `parentEntityId` Nullable(String),
    `parentEntityName` Nullable(String),
    `rootEntityVersionId` Nullable(String),
    `rootEntityType` LowCardinality(Nullable(String)),
    `rootEntityId` Nullable(String),
    `rootEntityName` Nullable(String),
    `userId` Nullable(String),
    `organizationId` Nullable(String),
    `resourceId` Nullable(String),
    `runId` Nullable(String),
    `sessionId` Nullable(String),
    `threadId` Nullable(String),
    `requestId` Nullable(String),
    `environment` LowCardinality(Nullable(String)),
    `executionSource` LowCardinality(Nullable(String)),
    `serviceName` LowCardinality(Nullable(String)),
    `name` LowCardinality(String),
    `value` Float64,
    `provider` LowCardinality(Nullable(String)),
    `model` Nullable(String),
    `estimatedCost` Nullable(Float64),
    `costUnit` LowCardinality(Nullable(String)),
    `tags` Array(LowCardinality(String)) DEFAULT [],
    `labels` Map(LowCardinality(String), String) DEFAULT map(),
    `costMetadata` Nullable(String),
    `metadata` Nullable(String),
    `scope` Nullable(String),
    INDEX idx_traceId traceId TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_threadId threadId TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_resourceId resourceId TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_userId userId TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_organizationId organizationId TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_experimentId experimentId TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_runId runId TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_sessionId sessionId TYPE bloom_filter(0.01) GRANULARITY 2,
    INDEX idx_requestId requestId TYPE bloom_filter(0.01) GRANULARITY 2
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (name, timestamp, metricId)
SETTINGS index_granularity = 8192
;

CREATE TABLE {{db}}.mastra_score_events
(
    `timestamp` DateTime64(3, 'UTC'),
    `scoreId` String,
    `traceId` Nullable(String),
    `spanId` Nullable(String),
    `experimentId` Nullable(String),
    `scoreTraceId` Nullable(String),
    `entityType` LowCardinality(Nullable(String)),
    `entityId` Nullable(String),
    `entityName` Nullable(String),
    `entityVersionId` Nullable(String),
    `parentEntityVersionId` Nullable(String),
    `parentEntityType` LowCardinality(Nullable(String)),
    `parentEntityId` Nullable(String),
    `parentEntityName` Nullable(String),
    `rootEntityVersionId` Nullable(String),
    `rootEntityType` LowCardinality(Nullable(String)),
    `rootEntityId` Nullable(String),
    `rootEntityName` Nullable(String),
    `userId` Nullable(String),
    `organizationId` Nullable(String),
    `resourceId` Nullable(String),
    `runId` Nullable(String),
    `sessionId` Nullable(String),
    `threadId` Nullable(String),
    `requestId` Nullable(String),
    `environment` LowCardinality(Nullable(String)),
    `executionSource` LowCardinality(Nullable(String)),
    `serviceName` LowCardinality(Nullable(String)),
    `scorerId` LowCardinality(String),
    `scorerVersion` LowCardinality(Nullable(String)),
    `scoreSource` LowCardinality(Nullable(String)),
    `score` Float64,
    `reason` Nullable(String),
    `tags` Array(LowCardinality(String)) DEFAULT [],
    `metadata` Nullable(String),
    `scope` Nullable(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (traceId, timestamp, scoreId)
SETTINGS allow_nullable_key = 1, index_granularity = 8192
;

CREATE TABLE {{db}}.mastra_feedback_events
(
    `timestamp` DateTime64(3, 'UTC'),
    `feedbackId` String,
    `traceId` Nullable(String),
    `spanId` Nullable(String),
    `experimentId` Nullable(String),
    `entityType` LowCardinality(Nullable(String)),
    `entityId` Nullable(String),
    `entityName` Nullable(String),
    `entityVersionId` Nullable(String),
    `parentEntityVersionId` Nullable(String),
    `parentEntityType` LowCardinality(Nullable(String)),
    `parentEntityId` Nullable(String),
    `parentEntityName` Nullable(String),
    `rootEntityVersionId` Nullable(String),
    `rootEntityType` LowCardinality(Nullable(String)),
    `rootEntityId` Nullable(String),
    `rootEntityName` Nullable(String),
    `userId` Nullable(String),
    `organizationId` Nullable(String),
    `resourceId` Nullable(String),
    `runId` Nullable(String),
    `sessionId` Nullable(String),
    `threadId` Nullable(String),
    `requestId` Nullable(String),
    `environment` LowCardinality(Nullable(String)),
    `executionSource` LowCardinality(Nullable(String)),
    `serviceName` LowCardinality(Nullable(String)),
    `feedbackUserId` Nullable(String),
    `sourceId` Nullable(String),
    `feedbackSource` LowCardinality(String),
    `feedbackType` LowCardinality(String),
    `valueString` Nullable(String),
    `valueNumber` Nullable(Float64),
    `comment` Nullable(String),
    `tags` Array(LowCardinality(String)) DEFAULT [],
    `metadata` Nullable(String),
    `scope` Nullable(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
ORDER BY (traceId, timestamp, feedbackId)
SETTINGS allow_nullable_key = 1, index_granularity = 8192
;
