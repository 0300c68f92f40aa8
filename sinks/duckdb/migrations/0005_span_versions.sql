-- 0005_span_versions: spans become versions appended without a key, resolved to the
-- newest per (trace_id, span_id) when read.
--
-- The primary key made every write look each row up in an ART index that grew with
-- the table (memory and time): upserts fell behind at a few hundred thousand spans.
-- span_versions has no key and no index; the writer appends every snapshot through
-- DuckDB's appender. seq numbers the rows in write order (spanpipe_span_state hands
-- out ranges). The writer compacts: it deletes every version that a newer one of the
-- same span supersedes, then records the highest seq it examined as compacted_seq.
-- Rows up to compacted_seq are therefore one per span, and only the keys of the rows
-- written since (the tail, a few hundred thousand rows at most) can have a
-- superseded version left. spans, the view readers use, hides exactly those: it
-- shows what the table would hold if every write had been an upsert, with the same
-- columns in the same order.
--
-- /*zstd*/ marks the columns that the migrator compresses with zstd in a file whose
-- storage version has it (see zstdMarker in migrate.go). The marker came after this
-- migration was released: to the files that applied it, it is a comment.
CREATE TABLE span_versions (
    trace_id                 VARCHAR   NOT NULL,
    span_id                  VARCHAR   NOT NULL,
    version                  UBIGINT   NOT NULL,
    parent_span_id           VARCHAR,
    external_parent_span_id  VARCHAR,
    name                     VARCHAR   NOT NULL,
    span_type                VARCHAR   NOT NULL,
    entity_type              VARCHAR,
    entity_id                VARCHAR,
    entity_name              VARCHAR,
    entity_version_id        VARCHAR,
    parent_entity_type       VARCHAR,
    parent_entity_id         VARCHAR,
    parent_entity_name       VARCHAR,
    parent_entity_version_id VARCHAR,
    root_entity_type         VARCHAR,
    root_entity_id           VARCHAR,
    root_entity_name         VARCHAR,
    root_entity_version_id   VARCHAR,
    user_id                  VARCHAR,
    organization_id          VARCHAR,
    resource_id              VARCHAR,
    run_id                   VARCHAR,
    session_id               VARCHAR,
    thread_id                VARCHAR,
    request_id               VARCHAR,
    environment              VARCHAR,
    source                   VARCHAR,
    service_name             VARCHAR,
    experiment_id            VARCHAR,
    tags                     VARCHAR[],
    started_at               TIMESTAMP NOT NULL,
    ended_at                 TIMESTAMP,
    attributes               VARCHAR,
    metadata                 VARCHAR,
    input                    VARCHAR /*zstd*/,
    output                   VARCHAR /*zstd*/,
    error                    VARCHAR,
    request_context          VARCHAR,
    is_event                 BOOLEAN   NOT NULL,
    is_root_span             BOOLEAN   NOT NULL,
    is_internal              BOOLEAN   NOT NULL,
    rank                     UTINYINT  NOT NULL,
    seq                      BIGINT    NOT NULL,
    created_at               TIMESTAMP NOT NULL,
    updated_at               TIMESTAMP NOT NULL
);

-- spans' columns (0001, then 0002's rank) in the order span_versions has them.
INSERT INTO span_versions
SELECT * EXCLUDE (created_at, updated_at, rank),
    coalesce(rank, 0), row_number() OVER (ORDER BY created_at), created_at, updated_at
FROM spans;

-- One row. next_seq is the first seq not handed out yet; compacted_seq the highest
-- seq up to which span_versions holds one row per span.
CREATE TABLE spanpipe_span_state (
    compacted_seq BIGINT NOT NULL,
    next_seq      BIGINT NOT NULL
);
INSERT INTO spanpipe_span_state SELECT count(*), count(*) + 1 FROM span_versions;

DROP TABLE spans;

-- The seq of every version that a newer one of its span supersedes (a higher version,
-- or the same version with a higher rank, or the same rank written later). Only spans
-- with a row in the tail are ranked: seq's zone maps keep the tail scan short.
CREATE VIEW spanpipe_superseded_spans AS
SELECT v.seq
FROM span_versions v
WHERE EXISTS (
    SELECT 1 FROM span_versions t
    WHERE t.seq > (SELECT compacted_seq FROM spanpipe_span_state)
      AND t.trace_id = v.trace_id AND t.span_id = v.span_id)
QUALIFY row_number() OVER (PARTITION BY v.trace_id, v.span_id ORDER BY v.version DESC, v.rank DESC, v.seq DESC) > 1;

CREATE VIEW spans AS
SELECT * EXCLUDE (rank, seq, created_at, updated_at), created_at, updated_at, rank
FROM span_versions v
WHERE NOT EXISTS (SELECT 1 FROM spanpipe_superseded_spans s WHERE s.seq = v.seq);
