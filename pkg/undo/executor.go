package undo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// maxAttempts bounds the runs of one request that end in a deadlock or serialization
// failure, such as a deadlock with the applier on the same target rows.
const maxAttempts = 3

// Config sets up an Executor.
type Config struct {
	// Store is the metadata store in the target database. Its connections pin the text
	// formats of values, so that target values compare with the diffs the applier wrote.
	Store *store.Store
	// Tables are the applier's table mappings. A configured key names the target key
	// columns; without one, the target table's primary key is used.
	Tables []apply.TableSpec
}

// Option sets an optional part of an Executor.
type Option func(*Executor)

// WithLogger sets the logger; without it the executor logs nothing.
func WithLogger(log *slog.Logger) Option {
	return func(e *Executor) { e.log = log }
}

// WithOutcomes counts the requests by outcome in outcomes, a counter vector with one
// label: applied, planned, conflict, failed, or refused for a request that is invalid,
// names unknown changes or changes that cannot be undone.
func WithOutcomes(outcomes *prometheus.CounterVec) Option {
	return func(e *Executor) { e.outcomes = outcomes }
}

// Executor runs undo requests against the target database. It is safe for concurrent use.
type Executor struct {
	store    *store.Store
	tables   []apply.TableSpec
	log      *slog.Logger
	outcomes *prometheus.CounterVec
}

// New returns an executor for the target database of cfg.Store.
func New(cfg Config, opts ...Option) (*Executor, error) {
	if cfg.Store == nil {
		return nil, errors.New("undo executor: the metadata store is missing")
	}
	e := &Executor{store: cfg.Store, tables: cfg.Tables, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(e)
	}
	return e, nil
}

// Execute undoes the changes req selects, or plans their undo when req.DryRun is set. It
// returns ErrConflict, with the conflicts in the Result, when target values changed since
// the sync and req.Force is not set; then nothing is undone. Other errors wrap
// ErrInvalidRequest, ErrNotFound, ErrAlreadyUndone or ErrNotUndoable with the id at
// fault, or are failures of the database.
func (e *Executor) Execute(ctx context.Context, req Request) (Result, error) {
	s, err := req.scope()
	if err != nil {
		return Result{}, err
	}
	requestID, err := uuid.NewV7()
	if err != nil {
		return Result{}, fmt.Errorf("generate undo request id: %w", err)
	}

	for attempt := 1; ; attempt++ {
		res, err := e.execute(ctx, &req, s, requestID)
		if err == nil || !isRetryable(err) || attempt == maxAttempts {
			e.count(res, err)
			return res, err
		}
		e.log.Warn("undo request retried", "request_id", requestID.String(), "attempt", attempt,
			"error", err.Error())
	}
}

// count adds the outcome of a request to the outcomes counter.
func (e *Executor) count(res Result, err error) {
	if e.outcomes == nil {
		return
	}
	outcome := string(res.Status)
	if err != nil && !IsConflict(err) && res.Status != StatusFailed {
		outcome = "refused"
	}
	e.outcomes.WithLabelValues(outcome).Inc()
}

// execute runs one attempt of a request in one target transaction.
func (e *Executor) execute(ctx context.Context, req *Request, s scope, requestID uuid.UUID) (Result, error) {
	res := Result{RequestID: requestID, Status: StatusPlanned}
	tx, err := e.store.Pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("begin undo transaction: %w", err)
	}
	defer tx.Rollback(ctx)

	changes, skipped, err := e.load(ctx, tx, req, s)
	res.Skipped = skipped
	if err != nil {
		return res, err
	}
	plan, err := e.plan(ctx, tx, changes)
	if err != nil {
		return res, err
	}
	for _, u := range plan.changes {
		res.Changes = append(res.Changes, u.change)
		res.Conflicts = append(res.Conflicts, u.conflicts...)
	}
	if req.DryRun {
		return res, nil
	}

	if refused(res.Conflicts, req.Force) {
		_ = tx.Rollback(ctx) // release the locks before the audit rows are written
		res.Status = StatusConflict
		if err := e.recordOutcome(ctx, req, requestID, plan.changes, StatusConflict, ""); err != nil {
			return res, err
		}
		return res, fmt.Errorf("undo request %s: %d conflicts: %w", requestID, len(res.Conflicts), ErrConflict)
	}

	if err := sendWrites(ctx, tx, plan.writes); err != nil {
		if !apply.IsTargetRejection(err) {
			return res, err
		}
		_ = tx.Rollback(ctx)
		res.Status = StatusFailed
		if recErr := e.recordOutcome(ctx, req, requestID, plan.changes, StatusFailed, err.Error()); recErr != nil {
			return res, fmt.Errorf("record failed undo after %w: %w", err, recErr)
		}
		return res, fmt.Errorf("undo request %s: the target rejected the undo: %w", requestID, err)
	}
	res.Status, res.Forced = StatusApplied, req.Force && len(res.Conflicts) > 0
	if err := recordApplied(ctx, tx, req, requestID, plan.changes); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("commit undo request %s: %w", requestID, err)
	}
	e.log.Info("undo applied", "request_id", requestID.String(), "changes", len(res.Changes),
		"conflicts", len(res.Conflicts), "forced", res.Forced, "requestor", req.Requestor)
	return res, nil
}

// refused reports whether the conflicts reject the request: any conflict without force,
// and a blocking one even with it.
func refused(conflicts []Conflict, force bool) bool {
	for _, c := range conflicts {
		if !force || c.Blocking {
			return true
		}
	}
	return false
}

// load selects and locks the changes of a request and decodes them against their target
// tables, newest first.
func (e *Executor) load(ctx context.Context, tx pgx.Tx, req *Request, s scope) ([]*pending, []Skipped, error) {
	q := dbgen.New(tx)
	ids, err := scopeIDs(ctx, q, req, s)
	if err != nil {
		return nil, nil, err
	}
	locked, err := q.LockChangesForUndo(ctx, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("lock %d changes to undo: %w", len(ids), err)
	}
	selected, skipped, err := selectChanges(req, s, ids, locked)
	if err != nil {
		return nil, skipped, err
	}

	targets := map[string]*targetTable{}
	changes := make([]*pending, 0, len(selected))
	for _, ev := range selected {
		name := ev.SyncTargetTable.String
		t, ok := targets[name]
		if !ok {
			if t, err = loadTarget(ctx, tx, name, e.tables, ev.TargetKeyColumns); err != nil {
				return nil, skipped, err
			}
			targets[name] = t
		}
		p, err := newPending(ev, t)
		if err != nil {
			return nil, skipped, err
		}
		changes = append(changes, p)
	}
	return changes, skipped, nil
}

// plan is the undo of a whole request.
type plan struct {
	changes []planned
	writes  []write
}

// plan locks the target rows of the changes and plans their undo, newest first.
func (e *Executor) plan(ctx context.Context, tx pgx.Tx, changes []*pending) (plan, error) {
	rows := map[string]*rowState{}
	byTable := keysToLock(changes)
	// Tables are locked in name order, like rows in key order, so that two requests
	// take their locks in the same order.
	tables := slices.SortedFunc(maps.Keys(byTable), func(a, b *targetTable) int {
		return strings.Compare(a.name, b.name)
	})
	for _, t := range tables {
		if err := lockRows(ctx, tx, t, byTable[t], rows); err != nil {
			return plan{}, err
		}
	}
	pl := &planner{rows: rows}
	out := plan{changes: make([]planned, 0, len(changes))}
	for _, p := range changes {
		out.changes = append(out.changes, pl.plan(p))
	}
	out.writes = pl.writes
	return out, nil
}
