-- name: InsertChangeEvents :copyfrom
INSERT INTO change_events (
    id, pipeline, thread_id, seq, row_key, table_name, target_table, change_type,
    old_data, new_data, detected_at, status, decision_reason, decided_by, actor,
    source_lsn, xid, commit_time, error
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8,
    $9, $10, $11, $12, $13, $14, $15,
    $16, $17, $18, $19
);

-- name: GetChangeEvent :one
SELECT * FROM change_events
WHERE id = $1;

-- name: ListChangeEventsByThread :many
SELECT * FROM change_events
WHERE thread_id = $1
ORDER BY seq;

-- name: ListChangeEventsByRow :many
SELECT * FROM change_events
WHERE table_name = $1 AND row_key = $2
ORDER BY detected_at DESC, id DESC;

-- name: CountChangeEvents :one
SELECT count(*) FROM change_events
WHERE pipeline = $1;

-- name: ListPendingChanges :many
-- The held and blocked changes of a pipeline in source order, locked, for the per-row
-- order of the pipeline and for releasing held changes.
SELECT * FROM change_events
WHERE pipeline = $1 AND status IN ('held', 'blocked')
ORDER BY source_lsn, seq
FOR UPDATE;

-- name: UpdateChangeDecision :exec
UPDATE change_events
SET status = $2, decided_by = $3, decision_reason = $4, target_table = $5, error = $6
WHERE id = $1;

-- name: UpdateChangeData :exec
-- Replaces the recorded values of a change, such as with the digests of its long values
-- once a release has decided it.
UPDATE change_events
SET old_data = $2, new_data = $3
WHERE id = $1;

-- name: ListPendingRows :many
-- The rows with a held or blocked change, for the per-row order of each batch.
SELECT DISTINCT table_name, row_key, change_type = 'truncate' AS truncate
FROM change_events
WHERE pipeline = $1 AND status IN ('held', 'blocked');
