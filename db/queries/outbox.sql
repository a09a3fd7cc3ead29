-- name: InsertOutbox :exec
INSERT INTO outbox (event_type, payload)
VALUES ($1, $2);

-- name: InsertOutboxEvent :execrows
-- Writes one notification with the id the caller chose. A replayed event with the same id
-- is ignored, so enqueueing is idempotent.
INSERT INTO outbox (id, event_type, payload)
VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING;

-- name: LockUnroutedOutbox :many
-- Locks the oldest events that have no delivery rows yet. Rows another dispatcher is
-- routing are skipped.
SELECT id, event_type, payload
FROM outbox
WHERE routed_at IS NULL
ORDER BY created_at, id
LIMIT sqlc.arg(max_rows)
FOR UPDATE SKIP LOCKED;

-- name: InsertDeliveries :exec
INSERT INTO outbox_deliveries (outbox_id, destination)
SELECT sqlc.arg(outbox_id), unnest(sqlc.arg(destinations)::text[])
ON CONFLICT DO NOTHING;

-- name: MarkOutboxRouted :exec
-- Records that the event was routed. An event no destination wants is finished at once.
UPDATE outbox
SET routed_at = now(),
    delivered_at = CASE WHEN sqlc.arg(has_destinations)::boolean THEN NULL ELSE now() END
WHERE id = sqlc.arg(id);

-- name: ClaimDeliveries :many
-- Locks the due deliveries of one destination, oldest first, for the rest of the
-- transaction. Rows another dispatcher holds are skipped, so no two dispatchers send the
-- same delivery at once.
SELECT d.outbox_id, d.attempts, o.event_type, o.payload
FROM outbox_deliveries d
JOIN outbox o ON o.id = d.outbox_id
WHERE d.destination = sqlc.arg(destination)
  AND d.delivered_at IS NULL
  AND d.failed_at IS NULL
  AND d.next_attempt_at <= now()
ORDER BY d.next_attempt_at, o.created_at, d.outbox_id
LIMIT sqlc.arg(max_rows)
FOR UPDATE OF d SKIP LOCKED;

-- name: MarkDelivered :exec
UPDATE outbox_deliveries
SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
WHERE destination = sqlc.arg(destination) AND outbox_id = ANY(sqlc.arg(batch)::uuid[]);

-- name: ScheduleRetry :exec
UPDATE outbox_deliveries
SET attempts = attempts + 1,
    next_attempt_at = now() + make_interval(secs => sqlc.arg(delay_seconds)::float8),
    last_error = sqlc.arg(last_error)
WHERE destination = sqlc.arg(destination) AND outbox_id = ANY(sqlc.arg(batch)::uuid[]);

-- name: MarkDeliveryFailed :exec
UPDATE outbox_deliveries
SET attempts = attempts + 1, failed_at = now(), last_error = sqlc.arg(last_error)
WHERE destination = sqlc.arg(destination) AND outbox_id = ANY(sqlc.arg(batch)::uuid[]);

-- name: FailRemovedDestinations :execrows
-- Gives up on the pending deliveries of destinations that are no longer configured, which
-- would otherwise stay pending for ever.
UPDATE outbox_deliveries
SET failed_at = now(), last_error = 'destination removed from the notify configuration'
WHERE delivered_at IS NULL
  AND failed_at IS NULL
  AND NOT destination = ANY(sqlc.arg(configured)::text[]);

-- name: FinishOutbox :execrows
-- Finishes the routed events whose deliveries are all finished: delivered when every
-- destination acknowledged, failed when at least one gave up.
UPDATE outbox o
SET delivered_at = CASE WHEN f.failed THEN NULL ELSE now() END,
    failed_at = CASE WHEN f.failed THEN now() ELSE NULL END
FROM (
    SELECT p.id, EXISTS (
        SELECT 1 FROM outbox_deliveries d WHERE d.outbox_id = p.id AND d.failed_at IS NOT NULL
    ) AS failed
    FROM outbox p
    WHERE p.routed_at IS NOT NULL
      AND p.delivered_at IS NULL
      AND p.failed_at IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM outbox_deliveries d
          WHERE d.outbox_id = p.id AND d.delivered_at IS NULL AND d.failed_at IS NULL
      )
) f
WHERE o.id = f.id;

-- name: CountPendingOutbox :one
SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL;

-- name: CountPendingDeliveries :many
SELECT destination, count(*) AS pending
FROM outbox_deliveries
WHERE delivered_at IS NULL AND failed_at IS NULL
GROUP BY destination;
