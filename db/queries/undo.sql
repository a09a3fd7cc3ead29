-- Queries of the undo executor. The List and Get queries resolve the scope of a request
-- to change ids; LockChangesForUndo then reads and locks those changes for the rest of
-- the transaction, so two requests for one change run one after the other.

-- name: GetChangeIDByUndoToken :one
SELECT id FROM change_events
WHERE undo_token = $1;

-- name: ListChangeIDsByThread :many
SELECT id FROM change_events
WHERE thread_id = $1;

-- name: ListSyncedChangeIDsByRow :many
-- Changes that wrote to one row since a time. The table is the source or the target table.
SELECT change_event_id FROM sync_log
WHERE (source_table = sqlc.arg(table_name) OR target_table = sqlc.arg(table_name))
  AND source_id = sqlc.arg(row_key)
  AND undo_request IS NULL
  AND synced_at >= sqlc.arg(since);

-- name: ListSyncedChangeIDsInWindow :many
-- Changes written to the target in [since, until), of the given source or target tables,
-- or of every table when the list is empty.
SELECT change_event_id FROM sync_log
WHERE undo_request IS NULL
  AND synced_at >= sqlc.arg(since)
  AND synced_at < sqlc.arg(until)
  AND (cardinality(sqlc.arg(tables)::text[]) = 0
       OR source_table = ANY(sqlc.arg(tables)::text[])
       OR target_table = ANY(sqlc.arg(tables)::text[]));

-- name: LockChangesForUndo :many
-- Reads the changes with their sync_log write, newest first, and locks the change_events
-- rows. A request that waits for the lock reads the status the other request committed.
SELECT ce.id, ce.pipeline, ce.thread_id, ce.seq, ce.row_key, ce.table_name, ce.change_type,
       ce.status, ce.decision_reason, ce.error, ce.source_lsn, ce.actor,
       sl.id AS sync_log_id, sl.target_table AS sync_target_table, sl.target_key, sl.diff,
       sl.op AS applied_op, sl.target_key_columns
FROM change_events ce
LEFT JOIN sync_log sl ON sl.change_event_id = ce.id AND sl.undo_request IS NULL
WHERE ce.id = ANY(sqlc.arg(ids)::uuid[])
ORDER BY ce.source_lsn DESC, ce.seq DESC
FOR UPDATE OF ce;

-- name: InsertUndoRequests :copyfrom
INSERT INTO undo_requests (
    id, request_id, change_event, requestor, reason, undone_at, status, forced, conflicts, error
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
);

-- name: MarkChangesUndone :exec
UPDATE change_events SET status = 'undone'
WHERE id = ANY(sqlc.arg(ids)::uuid[]);

-- name: MarkSyncLogUndone :exec
UPDATE sync_log SET undo_status = 'undone'
WHERE id = ANY(sqlc.arg(ids)::uuid[]);

-- name: InsertUndoSyncLog :copyfrom
-- Records the target writes of an undo, one row per undone change.
INSERT INTO sync_log (
    id, change_event_id, source_table, target_table, source_id, target_key, diff,
    synced_at, performed_by, op, undo_request, target_key_columns
) VALUES (
    $1, $2, $3, $4, $5, $6, $7,
    $8, $9, $10, $11, $12
);
