// Package undo reverts changes that changesync wrote to target tables. A Request names the
// changes by one scope: a change id, an undo token, a thread (one source transaction), a
// row, or a time window. Executor.Execute reads their sync_log writes newest first (by
// source LSN, then position in the transaction), locks every target row involved with
// SELECT … FOR UPDATE, checks that each column still holds the value changesync wrote,
// and restores the old values in one target transaction: an inserted row is deleted, a
// deleted row is inserted again, an update gets the old values of exactly the columns it
// changed back, and a key change moves the row back to its old key.
//
// A column that changed since the sync is a conflict. By default a request with conflicts
// is rejected as a whole and writes nothing but its audit rows, and with Force it
// overwrites them. Every undone change gets an undo_requests row, its change_events status
// becomes undone, its sync_log row is marked undone, the undo's own target writes are
// logged in sync_log, and an undo notification is enqueued in the same transaction.
package undo
