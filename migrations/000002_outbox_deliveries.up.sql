-- Delivery state of the outbox per destination. The dispatcher routes each outbox row
-- once, to every destination whose filters match it, and keeps the attempts and the
-- acknowledgement of each destination in its own outbox_deliveries row. A destination
-- that acknowledged an event is not sent it again while another destination is still
-- being retried.

ALTER TABLE outbox ADD COLUMN routed_at timestamptz;

COMMENT ON COLUMN outbox.routed_at IS
    'Set when the dispatcher created the delivery rows of the event, one per matching destination.';
COMMENT ON COLUMN outbox.delivered_at IS
    'Set once every matching destination acknowledged the event, or at routing when none matched.';
COMMENT ON COLUMN outbox.attempts IS
    'Unused since per-destination attempts moved to outbox_deliveries.attempts.';

CREATE INDEX outbox_unrouted_idx ON outbox (created_at) WHERE routed_at IS NULL;

CREATE TABLE outbox_deliveries (
    outbox_id       uuid NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    destination     text NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    failed_at       timestamptz,
    last_error      text,
    PRIMARY KEY (outbox_id, destination)
);

COMMENT ON TABLE outbox_deliveries IS 'One row per outbox event and destination that wants it.';
COMMENT ON COLUMN outbox_deliveries.destination IS 'Name of the destination in the notify configuration.';
COMMENT ON COLUMN outbox_deliveries.attempts IS 'Sends tried so far, acknowledged or not.';
COMMENT ON COLUMN outbox_deliveries.delivered_at IS 'Set when the destination acknowledged the event.';
COMMENT ON COLUMN outbox_deliveries.failed_at IS
    'Set when the dispatcher gave up after the last attempt, or when the destination was removed '
    'from the configuration.';
COMMENT ON COLUMN outbox_deliveries.last_error IS
    'Error of the last failed attempt, with secrets and URLs of the destination removed.';

CREATE INDEX outbox_deliveries_due_idx ON outbox_deliveries (destination, next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
