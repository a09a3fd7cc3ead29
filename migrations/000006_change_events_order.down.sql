CREATE INDEX IF NOT EXISTS change_events_detected_idx ON change_events (detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_table_detected_idx
    ON change_events (table_name, detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_row_key_detected_idx
    ON change_events (row_key, detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_status_detected_idx
    ON change_events (status, detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_change_type_detected_idx
    ON change_events (change_type, detected_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_actor_detected_idx
    ON change_events (actor, detected_at DESC, id DESC) WHERE actor IS NOT NULL;

DROP INDEX IF EXISTS change_events_actor_order_idx;
DROP INDEX IF EXISTS change_events_change_type_order_idx;
DROP INDEX IF EXISTS change_events_status_order_idx;
DROP INDEX IF EXISTS change_events_row_key_order_idx;
DROP INDEX IF EXISTS change_events_table_order_idx;
DROP INDEX IF EXISTS change_events_detected_order_idx;
