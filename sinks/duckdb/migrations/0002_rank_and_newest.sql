-- 0002_rank_and_newest: ties between snapshots of one version, and what the stored
-- row of the other signals means.

-- rank orders the snapshots of one span version: ended 3 > updated 2 > started 1
-- (schema.Span.Rank), so that an ended snapshot is never replaced by a started or
-- updated one of the same version, whatever the arrival order. Rows written before
-- this migration did not record their event: a row with an end, or an event span,
-- is taken as ended, any other as started (the lowest rank, which any snapshot of
-- the same version replaces, as before).
ALTER TABLE spans ADD COLUMN rank UTINYINT DEFAULT 0;
UPDATE spans SET rank = CASE WHEN is_event OR ended_at IS NOT NULL THEN 3 ELSE 1 END;

-- metrics.labels holds {} for a metric without labels, as Mastra stores it.
UPDATE metrics SET labels = '{}' WHERE labels IS NULL;

-- feedback.value holds the value as text: a string as itself (it was its JSON
-- text, quotes and escapes included), a number as its JSON number text.
-- value_string and value_number still tell the kinds apart.
UPDATE feedback SET value = value_string WHERE value_string IS NOT NULL;
