-- What the undo executor needs beyond the initial schema: the sync_log rows an undo
-- writes point at the undo request that wrote them, so the log of a target row shows the
-- undo beside the change it reverted; an undo that failed keeps its error; and time-window
-- undo requests find the sync_log rows of a window by their sync time.

ALTER TABLE sync_log ADD COLUMN undo_request uuid REFERENCES undo_requests (id);

COMMENT ON COLUMN sync_log.undo_request IS
    'Set on a row an undo wrote: the undo_requests row of the undone change, whose id is '
    'change_event_id. NULL on the write of a synced change.';

ALTER TABLE undo_requests ADD COLUMN error text;

COMMENT ON COLUMN undo_requests.error IS 'Why the undo failed, when status is failed.';

CREATE INDEX sync_log_synced_at_idx ON sync_log (synced_at) WHERE undo_request IS NULL;
