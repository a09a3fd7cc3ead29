DROP INDEX IF EXISTS sync_log_synced_at_idx;
ALTER TABLE undo_requests DROP COLUMN IF EXISTS error;
ALTER TABLE sync_log DROP COLUMN IF EXISTS undo_request;
