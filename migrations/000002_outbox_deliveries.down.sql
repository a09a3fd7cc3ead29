DROP TABLE IF EXISTS outbox_deliveries;
DROP INDEX IF EXISTS outbox_unrouted_idx;
COMMENT ON COLUMN outbox.attempts IS NULL;
COMMENT ON COLUMN outbox.delivered_at IS NULL;
ALTER TABLE outbox DROP COLUMN IF EXISTS routed_at;
