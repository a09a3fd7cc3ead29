-- Indexes behind the HTTP API's listings, so that they stay fast with millions of audit
-- rows. GET /change-events/ returns events newest first by (detected_at, id) and pages with
-- a cursor on that pair, so each filter gets an index that leads with the filter column and
-- ends with the order: the scan for one filter value reads rows already in page order and
-- stops when the page is full. The filters thread_id (change_events_thread_idx: a thread
-- has few events) and since, until and the cursor alone (change_events_detected_idx) were
-- indexed before.
--
-- NOTE: CREATE INDEX without CONCURRENTLY blocks writes to the table while it builds. The
-- file runs as one multi-statement query, which PostgreSQL runs in one transaction, and
-- CONCURRENTLY cannot run inside a transaction. On a large audit trail, create
-- these indexes CONCURRENTLY by hand before upgrading; IF NOT EXISTS then skips them.

CREATE INDEX IF NOT EXISTS change_events_table_detected_idx
    ON change_events (table_name, detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_row_key_detected_idx
    ON change_events (row_key, detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_status_detected_idx
    ON change_events (status, detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_change_type_detected_idx
    ON change_events (change_type, detected_at DESC, id DESC);
-- Most changes carry no actor, and a filter on one actor never matches NULL.
CREATE INDEX IF NOT EXISTS change_events_actor_detected_idx
    ON change_events (actor, detected_at DESC, id DESC) WHERE actor IS NOT NULL;

-- GET /diff/{row_key}: the writes of one row key, whatever its table.
CREATE INDEX IF NOT EXISTS sync_log_source_row_idx ON sync_log (source_id, synced_at, id);

-- GET /status/{change_id} and GET /change-events/{id}: every undo request of one change.
-- undo_requests_applied_once_idx covers applied requests only.
CREATE INDEX IF NOT EXISTS undo_requests_change_event_idx ON undo_requests (change_event, created_at, id);
