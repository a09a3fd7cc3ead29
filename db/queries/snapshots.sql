-- name: InsertSnapshot :exec
INSERT INTO snapshots (
    pipeline, source_table, target_table, rows_copied, snapshot_name, consistent_lsn,
    started_at, finished_at
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8
);

-- name: ListSnapshots :many
SELECT * FROM snapshots
WHERE pipeline = $1
ORDER BY started_at, id;
