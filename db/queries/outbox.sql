-- name: InsertOutbox :exec
INSERT INTO outbox (event_type, payload)
VALUES ($1, $2);
