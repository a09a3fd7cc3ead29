package undo

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// The errors of Execute. Each is wrapped with the change or value it is about, so test
// them with errors.Is or the predicates below.
var (
	// ErrInvalidRequest is a request without exactly one scope, or with a bad field.
	ErrInvalidRequest = errors.New("invalid undo request")
	// ErrNotFound is a change id, undo token, thread or row that has no change to undo.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyUndone is a change that an earlier request undid.
	ErrAlreadyUndone = errors.New("already undone")
	// ErrNotUndoable is a change that changesync never wrote to the target: skipped,
	// rejected, held, blocked, failed or not yet applied, or one that wrote nothing.
	ErrNotUndoable = errors.New("cannot be undone")
	// ErrConflict is a request rejected because target values changed since the sync.
	// The Result lists the conflicts.
	ErrConflict = errors.New("target values changed since the sync")
)

// IsConflict reports whether err is a request rejected for conflicts.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsNotFound reports whether err names a change, token, thread or row that was not found.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// SQLSTATEs the executor handles.
const (
	sqlstateUniqueViolation      = "23505"
	sqlstateSerializationFailure = "40001"
	sqlstateDeadlockDetected     = "40P01"
)

// appliedOnceIndex is the unique index that allows one applied undo per change.
const appliedOnceIndex = "undo_requests_applied_once_idx"

// isRetryable reports whether err is a deadlock or serialization failure, after which the
// whole request can run again.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == sqlstateDeadlockDetected || pgErr.Code == sqlstateSerializationFailure
}

// isAppliedTwice reports whether err is a second applied undo of one change, refused by
// the unique index. The change_events row locks normally prevent it.
func isAppliedTwice(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == sqlstateUniqueViolation &&
		pgErr.ConstraintName == appliedOnceIndex
}
