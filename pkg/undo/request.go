package undo

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/config"
)

// Request names the changes to undo by exactly one scope, and the options of the undo.
type Request struct {
	// ChangeID selects one change by its change_events id.
	ChangeID uuid.UUID
	// UndoToken selects one change by its change_events.undo_token.
	UndoToken uuid.UUID
	// ThreadID selects every change of one source transaction.
	ThreadID uuid.UUID
	// Table and RowKey select the synced changes of one row. Table is the source or the
	// target table in a form StoredTableName reads, and RowKey is in the format of
	// change_events.row_key.
	// With Since, only changes synced at or after it are selected.
	Table  string
	RowKey string
	// Since alone selects the changes synced at or after it, and before Until when Until
	// is set, of the Tables when Tables is not empty (source or target tables).
	Since  time.Time
	Until  time.Time
	Tables []string

	// DryRun returns the plan and writes nothing.
	DryRun bool
	// Force overwrites target values that changed since the sync instead of rejecting
	// the request. The undo_requests rows record that the request was forced.
	Force bool
	// Requestor is who asked for the undo, such as the subject of an API token.
	Requestor string
	// Reason is why the changes are undone. It is required unless DryRun is set.
	Reason string
}

// scope is the kind of selection a request makes.
type scope int

const (
	scopeChange scope = iota
	scopeToken
	scopeThread
	scopeRow
	scopeWindow
)

// single reports whether the scope names one change, whose refusal is an error rather
// than a skipped entry of the result.
func (s scope) single() bool { return s == scopeChange || s == scopeToken }

// Scopeless reports whether the request names no scope at all.
func (r *Request) Scopeless() bool {
	return r.ChangeID == uuid.Nil && r.UndoToken == uuid.Nil && r.ThreadID == uuid.Nil && r.Table == "" &&
		r.RowKey == "" && r.Since.IsZero() && r.Until.IsZero() && len(r.Tables) == 0
}

// scope validates the request and returns its scope.
func (r *Request) scope() (scope, error) {
	var scopes []string
	var s scope
	if r.ChangeID != uuid.Nil {
		scopes, s = append(scopes, "change id"), scopeChange
	}
	if r.UndoToken != uuid.Nil {
		scopes, s = append(scopes, "undo token"), scopeToken
	}
	if r.ThreadID != uuid.Nil {
		scopes, s = append(scopes, "thread id"), scopeThread
	}
	if r.Table != "" || r.RowKey != "" {
		scopes, s = append(scopes, "table and row key"), scopeRow
	} else if !r.Since.IsZero() || !r.Until.IsZero() || len(r.Tables) > 0 {
		scopes, s = append(scopes, "time window"), scopeWindow
	}
	const oneScope = "name exactly one of a change id, an undo token, a thread id, a table and row key, " +
		"or a time window"
	switch len(scopes) {
	case 0:
		return 0, fmt.Errorf("%w: it names no scope: %s", ErrInvalidRequest, oneScope)
	case 1:
	default:
		return 0, fmt.Errorf("%w: it names %d scopes (%s): %s",
			ErrInvalidRequest, len(scopes), strings.Join(scopes, ", "), oneScope)
	}
	if err := r.checkScope(s); err != nil {
		return 0, err
	}
	if err := r.storeTableNames(); err != nil {
		return 0, err
	}
	if !r.DryRun && strings.TrimSpace(r.Reason) == "" {
		return 0, fmt.Errorf("%w: the reason is missing: say why the changes are undone", ErrInvalidRequest)
	}
	if strings.TrimSpace(r.Requestor) == "" {
		return 0, fmt.Errorf("%w: the requestor is missing: name who asks for the undo", ErrInvalidRequest)
	}
	return s, nil
}

// checkScope checks the fields of a row or time-window scope.
func (r *Request) checkScope(s scope) error {
	switch s {
	case scopeRow:
		if r.Table == "" || r.RowKey == "" {
			return fmt.Errorf("%w: a row scope needs both the table and the row key", ErrInvalidRequest)
		}
		if !r.Until.IsZero() || len(r.Tables) > 0 {
			return fmt.Errorf("%w: a row scope takes only since, not until or tables", ErrInvalidRequest)
		}
	case scopeWindow:
		if r.Since.IsZero() {
			return fmt.Errorf("%w: a time window needs its start (since)", ErrInvalidRequest)
		}
		if !r.Until.IsZero() && !r.Until.After(r.Since) {
			return fmt.Errorf("%w: the window ends at %s, not after its start %s", ErrInvalidRequest,
				r.Until.Format(time.RFC3339), r.Since.Format(time.RFC3339))
		}
	}
	return nil
}

// storeTableNames rewrites Table and Tables in the form the audit trail stores.
func (r *Request) storeTableNames() error {
	var err error
	if r.Table != "" {
		if r.Table, err = StoredTableName(r.Table); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
	}
	for i, t := range r.Tables {
		if r.Tables[i], err = StoredTableName(t); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
	}
	return nil
}

// StoredTableName returns a table name in the form change_events.table_name and the
// tables of sync_log store it: schema.table, unquoted, in its exact case. A name that
// contains a double quote is read as SQL and the configuration read it, so
// "Mixed"."Case Table" is Mixed.Case Table and an unquoted part folds to lower case. Any
// other name is taken as already in the stored form. A name without a schema, in either
// form, is in public.
func StoredTableName(name string) (string, error) {
	if strings.Contains(name, `"`) {
		t, err := config.ParseTableName(name)
		if err != nil {
			return "", err
		}
		return t.String(), nil
	}
	if strings.Contains(name, ".") {
		return name, nil
	}
	return "public." + name, nil
}
