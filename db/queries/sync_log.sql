-- name: InsertSyncLog :copyfrom
INSERT INTO sync_log (
    id, change_event_id, source_table, target_table, source_id, target_key, diff,
    synced_at, performed_by, op, target_key_columns
) VALUES (
    $1, $2, $3, $4, $5, $6, $7,
    $8, $9, $10, $11
);

-- name: ListSyncLogByChange :many
SELECT * FROM sync_log
WHERE change_event_id = $1
ORDER BY synced_at, id;
