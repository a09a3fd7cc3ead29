// Package undo reverts changes that changesync wrote to target tables. A Request names the
// changes by one scope: a change id, an undo token, a thread (one source transaction), a
// row, or a time window. Executor.Execute reads their sync_log writes newest first, by
// source LSN and then by position in the transaction. It locks every target row involved
// with SELECT … FOR UPDATE and checks that each column still contains the value
// changesync wrote. Then it restores the old values in one target transaction. An
// inserted row is deleted and a deleted row is inserted again. An update gets the old
// values of exactly the columns it changed back, and a key change moves the row back to
// its old key.
//
// A column that changed since the sync is a conflict. By default a request with conflicts
// is rejected as a whole and writes nothing but its audit rows, and with Force it
// overwrites them. Every undone change gets an undo_requests row, its change_events status
// becomes undone, its sync_log row is marked undone, the undo's own target writes are
// logged in sync_log, and an undo notification is enqueued in the same transaction.
package undo
