-- Queries of the HTTP API: the audit listings and histories it reads.

-- name: ListChangeEventsPage :many
-- One page of change events, newest first. Every filter is optional (NULL leaves it out).
-- Events of one batch share detected_at, so ties go by the source transaction's commit
-- LSN and the position in it, both newest first, and then by id. The cursor is the
-- (detected_at, source_lsn, seq, id) of the last event of the previous page.
-- Each filter has an index that leads with its column and ends with this order, and
-- change_events_detected_order_idx serves since, until and the cursor (migration 000006).
-- With several filters the planner picks one of these indexes and filters the rest.
SELECT * FROM change_events
WHERE (sqlc.narg(table_name)::text IS NULL OR table_name = sqlc.narg(table_name))
  AND (sqlc.narg(row_key)::text IS NULL OR row_key = sqlc.narg(row_key))
  AND (sqlc.narg(status)::change_status IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(change_type)::change_type IS NULL OR change_type = sqlc.narg(change_type))
  AND (sqlc.narg(thread_id)::uuid IS NULL OR thread_id = sqlc.narg(thread_id))
  AND (sqlc.narg(actor)::text IS NULL OR actor = sqlc.narg(actor))
  AND (sqlc.narg(since)::timestamptz IS NULL OR detected_at >= sqlc.narg(since))
  AND (sqlc.narg(until)::timestamptz IS NULL OR detected_at < sqlc.narg(until))
  AND (sqlc.narg(after_detected_at)::timestamptz IS NULL
       OR (detected_at, source_lsn, seq, id) < (sqlc.narg(after_detected_at), sqlc.narg(after_source_lsn)::bigint,
                                                sqlc.narg(after_seq)::int, sqlc.narg(after_id)::uuid))
ORDER BY detected_at DESC, source_lsn DESC, seq DESC, id DESC
LIMIT sqlc.arg(page_size);

-- name: ListUndoRequestsByChange :many
SELECT * FROM undo_requests
WHERE change_event = $1
ORDER BY created_at, id;

-- name: ListUndoRequestsByRequest :many
SELECT * FROM undo_requests
WHERE request_id = $1
ORDER BY created_at, id;

-- name: ListSyncLogByRow :many
-- The target writes of one row, oldest first: the writes of synced changes and of undos.
-- The table, when given, is the source or the target table.
-- sync_log_source_row_idx (source_id, synced_at, id) finds the writes of one row key.
SELECT * FROM sync_log
WHERE source_id = sqlc.arg(row_key)
  AND (sqlc.narg(table_name)::text IS NULL
       OR source_table = sqlc.narg(table_name) OR target_table = sqlc.narg(table_name))
ORDER BY synced_at, id;
