-- GET /change-events/ orders events newest first by (detected_at, source_lsn, seq, id):
-- the events of one batch share detected_at, and the commit LSN of their source
-- transaction and their position in it put them in source order, where the random-looking
-- id alone mixed them up. The listing's indexes of migration 000004 and
-- change_events_detected_idx end with (detected_at, id), so they are rebuilt to end with
-- the new order: the scan for one filter value then still reads rows in page order and
-- stops when the page is full.
--
-- NOTE: CREATE INDEX without CONCURRENTLY blocks writes to the table while it builds, and
-- this file runs in one transaction, where CONCURRENTLY cannot run. On a large audit
-- trail, create these indexes CONCURRENTLY by hand before upgrading; IF NOT EXISTS then
-- skips them.

CREATE INDEX IF NOT EXISTS change_events_detected_order_idx
    ON change_events (detected_at DESC, source_lsn DESC, seq DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_table_order_idx
    ON change_events (table_name, detected_at DESC, source_lsn DESC, seq DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_row_key_order_idx
    ON change_events (row_key, detected_at DESC, source_lsn DESC, seq DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_status_order_idx
    ON change_events (status, detected_at DESC, source_lsn DESC, seq DESC, id DESC);
CREATE INDEX IF NOT EXISTS change_events_change_type_order_idx
    ON change_events (change_type, detected_at DESC, source_lsn DESC, seq DESC, id DESC);
-- Most changes carry no actor, and a filter on one actor never matches NULL.
CREATE INDEX IF NOT EXISTS change_events_actor_order_idx
    ON change_events (actor, detected_at DESC, source_lsn DESC, seq DESC, id DESC) WHERE actor IS NOT NULL;

DROP INDEX IF EXISTS change_events_detected_idx;
DROP INDEX IF EXISTS change_events_table_detected_idx;
DROP INDEX IF EXISTS change_events_row_key_detected_idx;
DROP INDEX IF EXISTS change_events_status_detected_idx;
DROP INDEX IF EXISTS change_events_change_type_detected_idx;
DROP INDEX IF EXISTS change_events_actor_detected_idx;
