DROP INDEX IF EXISTS undo_requests_change_event_idx;
DROP INDEX IF EXISTS sync_log_source_row_idx;
DROP INDEX IF EXISTS change_events_actor_detected_idx;
DROP INDEX IF EXISTS change_events_change_type_detected_idx;
DROP INDEX IF EXISTS change_events_status_detected_idx;
DROP INDEX IF EXISTS change_events_row_key_detected_idx;
DROP INDEX IF EXISTS change_events_table_detected_idx;
