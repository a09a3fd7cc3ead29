package capture

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// The kinds of PermanentError. Match them with errors.Is.
var (
	ErrSlotMissing        = errors.New("replication slot does not exist")
	ErrSlotLost           = errors.New("replication slot is invalidated")
	ErrSlotMismatch       = errors.New("replication slot is not a pgoutput slot of the database")
	ErrPublicationMissing = errors.New("publication does not exist")
	ErrAuthentication     = errors.New("authentication failed")
	ErrPermission         = errors.New("permission denied")
	ErrDatabaseMissing    = errors.New("database does not exist")
)

// PermanentError is an error that reconnecting cannot fix, so Stream returns it instead
// of retrying. Its message names what is wrong and how to recover.
type PermanentError struct {
	Kind   error  // one of the Err values of this package
	Detail string // the failed step or state, with the names involved
	Hint   string // recovery steps for the operator
	Err    error  // the server's error, if any
}

func (e *PermanentError) Error() string {
	msg := e.Detail + ": " + e.Hint
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the kind and the server's error, so errors.Is and errors.As see both.
func (e *PermanentError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// IsPermanent reports whether err is an error that reconnecting cannot fix.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// SQLSTATEs this package reacts to.
const (
	sqlstateUndefinedObject        = "42704" // missing slot or publication
	sqlstateDuplicateObject        = "42710" // slot or publication already exists
	sqlstateObjectNotInPrereqState = "55000" // invalidated slot
	sqlstateInsufficientPrivilege  = "42501"
	sqlstateInvalidCatalogName     = "3D000" // missing database
	sqlstateClassInvalidAuth       = "28"    // invalid authorization and password
)

// sqlstate returns the SQLSTATE of a server error, or "".
func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// classify wraps err with the step that failed, and turns server errors that no retry
// can fix into a PermanentError.
func (r *Reader) classify(step string, err error) error {
	code := sqlstate(err)
	switch {
	case len(code) == 5 && code[:2] == sqlstateClassInvalidAuth:
		return &PermanentError{
			Kind:   ErrAuthentication,
			Detail: fmt.Sprintf("%s: authenticate as role %q", step, r.connCfg.User),
			Hint:   "check the user and password of the source URL and the server's pg_hba.conf",
			Err:    err,
		}
	case code == sqlstateInsufficientPrivilege:
		return &PermanentError{
			Kind:   ErrPermission,
			Detail: fmt.Sprintf("%s as role %q", step, r.connCfg.User),
			Hint: "the role needs the REPLICATION attribute to stream, ownership of the " +
				"tables to create the publication, and ownership of the publication and the " +
				"tables to add tables to it",
			Err: err,
		}
	case code == sqlstateInvalidCatalogName:
		return &PermanentError{
			Kind:   ErrDatabaseMissing,
			Detail: fmt.Sprintf("%s: database %q does not exist", step, r.connCfg.Database),
			Hint:   "check the database name of the source URL",
			Err:    err,
		}
	}
	return fmt.Errorf("%s: %w", step, err)
}

func (r *Reader) errSlotMissing() error {
	return &PermanentError{
		Kind: ErrSlotMissing,
		Detail: fmt.Sprintf("replication slot %q does not exist in database %q",
			r.cfg.Slot, r.connCfg.Database),
		Hint: "run changesync setup to create it, then copy the tables again, " +
			"because changes made while the slot was missing were not retained",
	}
}

func (r *Reader) errSlotLost() error {
	return &PermanentError{
		Kind:   ErrSlotLost,
		Detail: fmt.Sprintf("replication slot %q is invalidated (wal_status lost)", r.cfg.Slot),
		Hint: "the server removed WAL that the slot still needed because the slot fell more " +
			"than max_slot_wal_keep_size behind, so run changesync teardown and changesync " +
			"setup, then copy the tables again",
	}
}

// errPublicationTooNew is returned when the server reports the publication missing
// although the catalog has it. pgoutput (PostgreSQL 15) looks the publication up as of
// the position it decodes, so a publication created after that position stays missing
// for the life of the slot.
func (r *Reader) errPublicationTooNew(err error) error {
	return &PermanentError{
		Kind: ErrPublicationMissing,
		Detail: fmt.Sprintf("publication %q was created after the position of slot %q",
			r.cfg.Publication, r.cfg.Slot),
		Hint: "the server cannot decode the slot's changes with it, so run changesync " +
			"teardown and changesync setup, then copy the tables again",
		Err: err,
	}
}

func (r *Reader) errPublicationMissing() error {
	return &PermanentError{
		Kind: ErrPublicationMissing,
		Detail: fmt.Sprintf("publication %q does not exist in database %q",
			r.cfg.Publication, r.connCfg.Database),
		Hint: "run changesync setup to create it",
	}
}
