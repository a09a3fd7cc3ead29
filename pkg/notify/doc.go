// Package notify delivers changesync's notifications. Enqueue writes an event to the
// outbox table inside the caller's transaction, so it commits with the change it
// describes. A Dispatcher routes each outbox event to the Slack, email and webhook
// destinations that subscribe to its type and table, sends it, retries failed sends with
// exponential backoff and jitter, and tracks every destination's acknowledgement in
// outbox_deliveries, so a restart loses nothing and does not send an acknowledged event
// again. ParseConfig decodes the notify section of the configuration.
package notify
