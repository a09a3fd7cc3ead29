-- name: GetCheckpoint :one
SELECT * FROM checkpoints
WHERE pipeline = $1;

-- UpsertCheckpoint stores the checkpoint of a pipeline. It only moves forward: a commit
-- LSN at or below the stored one leaves the row unchanged.
-- name: UpsertCheckpoint :exec
INSERT INTO checkpoints (pipeline, slot, commit_lsn, end_lsn, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (pipeline) DO UPDATE
SET slot = excluded.slot,
    commit_lsn = excluded.commit_lsn,
    end_lsn = excluded.end_lsn,
    updated_at = excluded.updated_at
WHERE checkpoints.commit_lsn < excluded.commit_lsn;

-- name: DeleteCheckpoint :execrows
DELETE FROM checkpoints
WHERE pipeline = $1;
