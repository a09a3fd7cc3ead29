package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/notify"
	"github.com/datasense/changesync/pkg/store"
	"github.com/datasense/changesync/pkg/store/dbgen"
)

// ReleaseRequest names held changes and the decision on them. Exactly one of ChangeID
// and ThreadID is set. A thread releases every held change of one source transaction,
// such as a transaction the bulk guard held.
type ReleaseRequest struct {
	ChangeID uuid.UUID
	ThreadID uuid.UUID
	Approve  bool
	By       string // who decided, recorded as decided_by
	Reason   string
}

// ReleaseResult lists what a release did.
type ReleaseResult struct {
	Released []uuid.UUID // the held changes decided
	Applied  []uuid.UUID // blocked changes applied after them, in source order
	Failed   []uuid.UUID // changes the target rejected
	Blocked  int         // changes still blocked behind other held changes
}

// ErrNotHeld is returned when the named change or thread has no held change.
var ErrNotHeld = errors.New("no held change")

// ErrValueDigested is returned when a pending change stores a value only as its digest
// in change_events, so a release cannot apply it.
var ErrValueDigested = errors.New("value stored as a digest")

// ErrOutOfOrder is returned when a named held change comes after another held change of
// the same row, which must be decided first so that the row's changes apply in order.
var ErrOutOfOrder = errors.New("release out of order")

// Release decides held changes in one target transaction. An approved change is
// applied, a rejected one is recorded as rejected, and then every blocked change that no
// other held change holds back is applied, in source order. It takes the pipeline's
// lock, so it is serialized with the batches of a running pipeline and with other
// releases: a second release of the same change finds it no longer held.
func Release(ctx context.Context, st *store.Store, applier *apply.Applier, pipeline string, req ReleaseRequest,
	opts ...ReleaseOption,
) (ReleaseResult, error) {
	var o releaseOptions
	for _, opt := range opts {
		opt(&o)
	}
	var res ReleaseResult
	if (req.ChangeID == uuid.Nil) == (req.ThreadID == uuid.Nil) {
		return res, errors.New("release: name either a change id or a thread id")
	}
	if strings.TrimSpace(req.By) == "" {
		return res, errors.New("release: the name of who decides is missing")
	}

	tx, err := st.Pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("begin target transaction: %w", err)
	}
	defer tx.Rollback(ctx)

	pending, err := lockPending(ctx, tx, pipeline)
	if err != nil {
		return res, err
	}
	chosen := func(c *dbgen.ChangeEvent) bool {
		return c.Status == dbgen.ChangeStatusHeld && (c.ID == req.ChangeID || c.ThreadID == req.ThreadID)
	}
	if !slices.ContainsFunc(pending, func(c dbgen.ChangeEvent) bool { return chosen(&c) }) {
		return res, notHeldError(ctx, tx, req)
	}

	r := releaser{
		applier: applier, batch: applier.Begin(tx), rels: map[string]*change.Relation{}, now: time.Now().UTC(),
		pipeline: pipeline, wants: o.wants, maxValueBytes: o.maxValueBytes,
	}
	held := heldRows{}
	for i := range pending {
		c := &pending[i]
		ev, digested, err := r.event(c)
		if err != nil {
			return res, err
		}
		table, keys := c.TableName, applier.RowKeys(ev)
		switch {
		case chosen(c) && held.blocks(table, keys):
			return res, fmt.Errorf("%w: change %s of row %s in %s waits behind an earlier held change "+
				"of the same row; decide that one first (GET /diff or change_events lists them)",
				ErrOutOfOrder, c.ID, c.RowKey, table)
		case chosen(c) && !req.Approve:
			if err := r.decide(c, change.StatusRejected, req.By, req.Reason, nil); err != nil {
				return res, err
			}
			res.Released = append(res.Released, c.ID)
		case chosen(c):
			if digested != nil {
				return res, digested
			}
			if err := r.apply(ctx, c, ev, req.By, req.Reason, true, &res); err != nil {
				return res, err
			}
			res.Released = append(res.Released, c.ID)
		case c.Status == dbgen.ChangeStatusHeld || held.blocks(table, keys):
			held.add(table, keys)
			if c.Status == dbgen.ChangeStatusBlocked {
				res.Blocked++
			}
		default:
			if digested != nil {
				return res, digested
			}
			if err := r.apply(ctx, c, ev, c.DecidedBy.String, c.DecisionReason.String, false, &res); err != nil {
				return res, err
			}
			if r.lastStatus == change.StatusHeld {
				// The applier held it, such as for a column the target lacks.
				held.add(table, keys)
				continue
			}
			res.Applied = append(res.Applied, c.ID)
		}
	}
	if err := r.write(ctx, tx); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("commit release: %w", err)
	}
	return res, nil
}

// notHeldError explains why a release request found nothing to release.
func notHeldError(ctx context.Context, tx pgx.Tx, req ReleaseRequest) error {
	if req.ThreadID != uuid.Nil {
		return fmt.Errorf("%w in thread %s of this pipeline", ErrNotHeld, req.ThreadID)
	}
	c, err := dbgen.New(tx).GetChangeEvent(ctx, req.ChangeID)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: change %s not found", ErrNotHeld, req.ChangeID)
	}
	if err != nil {
		return fmt.Errorf("look up change %s: %w", req.ChangeID, err)
	}
	return fmt.Errorf("%w: change %s is %s, not held", ErrNotHeld, req.ChangeID, c.Status)
}

// releaser applies the changes of one release and collects their audit updates.
type releaser struct {
	applier *apply.Applier
	batch   *apply.Batch
	rels    map[string]*change.Relation // one relation per table and column set
	now     time.Time
	updates []dbgen.UpdateChangeDecisionParams
	// digests are the decided changes whose long values change_events now stores as
	// digests.
	digests []dbgen.UpdateChangeDataParams
	logs    []dbgen.InsertSyncLogParams
	// decided are the changes whose notifications write sends, with their new status.
	decided  []dbgen.InsertChangeEventsParams
	pipeline string
	wants    Wants
	// maxValueBytes is audit.max_value_bytes. 0 keeps the values whole.
	maxValueBytes int
	// lastStatus is the status of the change apply handled last.
	lastStatus change.Status
}

func (r *releaser) decide(c *dbgen.ChangeEvent, status change.Status, by, reason string, res *apply.Result,
) error {
	u := dbgen.UpdateChangeDecisionParams{
		ID: c.ID, Status: dbgen.ChangeStatus(status), DecidedBy: text(by), DecisionReason: text(reason),
		TargetTable: c.TargetTable, Error: c.Error,
	}
	if res != nil {
		if res.Target != (change.TableName{}) {
			u.TargetTable = text(res.Target.String())
		}
		if status == change.StatusFailed {
			u.Error = text(res.Reason)
		}
	}
	r.updates = append(r.updates, u)
	r.decided = append(r.decided, dbgen.InsertChangeEventsParams{
		ID: c.ID, ThreadID: c.ThreadID, RowKey: c.RowKey, TableName: c.TableName, TargetTable: u.TargetTable,
		ChangeType: c.ChangeType, Status: u.Status, DecisionReason: u.DecisionReason, DecidedBy: u.DecidedBy,
		Actor: c.Actor, CommitTime: c.CommitTime, Error: u.Error,
	})
	if status == change.StatusHeld || status == change.StatusBlocked {
		return nil // still pending, so a later release needs the values whole
	}
	return r.digest(c)
}

// digest stores the values of a decided change that exceed the audit's value limit as
// digests, as the pipeline stores those of changes it does not hold.
func (r *releaser) digest(c *dbgen.ChangeEvent) error {
	oldData, oldChanged, err := change.DigestAuditJSON(c.OldData, r.maxValueBytes)
	if err != nil {
		return fmt.Errorf("change %s: old_data: %w", c.ID, err)
	}
	newData, newChanged, err := change.DigestAuditJSON(c.NewData, r.maxValueBytes)
	if err != nil {
		return fmt.Errorf("change %s: new_data: %w", c.ID, err)
	}
	if oldChanged || newChanged {
		r.digests = append(r.digests, dbgen.UpdateChangeDataParams{ID: c.ID, OldData: oldData, NewData: newData})
	}
	return nil
}

// apply applies one stored change and records its outcome.
func (r *releaser) apply(ctx context.Context, c *dbgen.ChangeEvent, ev *change.Event, by, reason string,
	approved bool, out *ReleaseResult,
) error {
	// The recorded actor is the transaction's user or else the actor column's value, and
	// either gives the table's transforms the actor they saw when the change arrived.
	ctx = apply.WithTxActor(ctx, c.Actor.String)
	apply := r.batch.ApplyIsolated
	if approved {
		apply = r.batch.ApplyReleased
	}
	res, err := apply(ctx, ev)
	if err != nil {
		return fmt.Errorf("apply change %s: %w", c.ID, err)
	}
	r.lastStatus = res.Status
	if err := r.decide(c, res.Status, by, reason, &res); err != nil {
		return err
	}
	if res.Status == change.StatusFailed {
		out.Failed = append(out.Failed, c.ID)
	}
	if res.Diff != nil {
		r.logs = append(r.logs, syncLogRow(c.ID, c.TableName, c.RowKey, cmp.Or(c.Actor.String, by),
			cmp.Or(res.Op, ev.Op), res, r.now))
	}
	return nil
}

func (r *releaser) write(ctx context.Context, tx pgx.Tx) error {
	q := dbgen.New(tx)
	for _, u := range r.updates {
		if err := q.UpdateChangeDecision(ctx, u); err != nil {
			return fmt.Errorf("record the decision on change %s: %w", u.ID, err)
		}
	}
	for _, d := range r.digests {
		if err := q.UpdateChangeData(ctx, d); err != nil {
			return fmt.Errorf("store the value digests of change %s: %w", d.ID, err)
		}
	}
	if len(r.logs) > 0 {
		if _, err := q.InsertSyncLog(ctx, r.logs); err != nil {
			return fmt.Errorf("write sync_log: %w", err)
		}
	}
	return r.notify(ctx, tx)
}

// notify writes the notifications of the decided changes that a destination wants.
func (r *releaser) notify(ctx context.Context, tx pgx.Tx) error {
	if r.wants == nil {
		return nil
	}
	diffs := make(map[uuid.UUID][]byte, len(r.logs))
	for _, l := range r.logs {
		diffs[l.ChangeEventID] = l.Diff
	}
	for i := range r.decided {
		row := &r.decided[i]
		typ := eventType(row.Status)
		if typ == "" || !r.wants(typ, row.TableName) {
			continue
		}
		ev, err := changeEvent(r.pipeline, typ, row, diffs[row.ID])
		if err != nil {
			return err
		}
		if _, err := notify.Enqueue(ctx, tx, ev); err != nil {
			return fmt.Errorf("write %s event of change %s to the outbox: %w", typ, row.ID, err)
		}
	}
	return nil
}

// ReleaseOption sets an optional part of a release.
type ReleaseOption func(*releaseOptions)

type releaseOptions struct {
	wants         Wants
	maxValueBytes int
}

// WithReleaseNotifications writes an outbox event for each change the release decides or
// applies whose type wants accepts, in the release's transaction.
func WithReleaseNotifications(wants Wants) ReleaseOption {
	return func(o *releaseOptions) { o.wants = wants }
}

// WithReleaseMaxValueBytes sets the audit's value limit, audit.max_value_bytes: once a
// release decides a change, change_events stores its values longer than maxValueBytes
// bytes as digests. Without it, or with 0, the values stay whole.
func WithReleaseMaxValueBytes(maxValueBytes int) ReleaseOption {
	return func(o *releaseOptions) { o.maxValueBytes = maxValueBytes }
}

// event rebuilds a change from its change_events row. The relation has the columns the
// row recorded, all flagged as key as under REPLICA IDENTITY FULL, so the applier finds
// the target row by the configured key or the target's primary key. A column left out
// of new_data, such as an unchanged TOAST value, is not written.
//
// A column stored only as a digest is left out of the event too. digested is then an
// ErrValueDigested error, which the caller returns instead of applying the change, so a
// digest never reaches the target. The pipeline stores held and blocked changes whole,
// so only a row edited after it was recorded has digests.
func (r *releaser) event(c *dbgen.ChangeEvent) (ev *change.Event, digested, err error) {
	table, ok := r.applier.SourceTable(c.TableName)
	if !ok {
		return nil, nil, fmt.Errorf("change %s is of table %s, which is no longer configured", c.ID, c.TableName)
	}
	oldVals, oldDigests, err := decodeData(c.OldData)
	if err != nil {
		return nil, nil, fmt.Errorf("change %s: old_data: %w", c.ID, err)
	}
	newVals, newDigests, err := decodeData(c.NewData)
	if err != nil {
		return nil, nil, fmt.Errorf("change %s: new_data: %w", c.ID, err)
	}
	if len(oldDigests)+len(newDigests) > 0 {
		digested = digestedError(c, oldDigests, newDigests)
	}
	var names []string
	for name := range newVals {
		names = append(names, name)
	}
	for name := range oldVals {
		if _, ok := newVals[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)

	relKey := c.TableName + "\x00" + strings.Join(names, "\x00")
	rel, ok := r.rels[relKey]
	if !ok {
		rel = &change.Relation{Table: table, ReplicaIdentity: 'f', Columns: make([]change.Column, len(names))}
		for i, name := range names {
			rel.Columns[i] = change.Column{Name: name, Key: true}
		}
		r.rels[relKey] = rel
	}
	ev = &change.Event{ID: c.ID, ThreadID: c.ThreadID, Seq: int(c.Seq), Op: change.Op(c.ChangeType), Relation: rel}
	if ev.Op == change.OpTruncate {
		ev.Truncated = []*change.Relation{rel}
		return ev, digested, nil
	}
	if newVals != nil {
		ev.New = tuple(names, newVals, change.Value{Kind: change.Unchanged})
	}
	if oldVals != nil {
		ev.Old = tuple(names, oldVals, change.Value{Kind: change.Absent})
		ev.OldKeyOnly = newVals != nil && len(oldVals) < len(newVals)
	}
	return ev, digested, nil
}

// decodeData decodes old_data or new_data: column name to text value, nil for NULL. The
// columns stored only as digests are returned apart, in digests.
func decodeData(raw []byte) (vals map[string]*string, digests []string, err error) {
	stored, err := change.DecodeAuditJSON(raw)
	if stored == nil || err != nil {
		return nil, nil, err
	}
	vals = make(map[string]*string, len(stored))
	for name, v := range stored {
		if v.Digest != nil {
			digests = append(digests, name)
			continue
		}
		vals[name] = v.Text
	}
	slices.Sort(digests)
	return vals, digests, nil
}

// digestedError returns the ErrValueDigested error of a change with digests in old_data
// or new_data.
func digestedError(c *dbgen.ChangeEvent, oldDigests, newDigests []string) error {
	var where []string
	if len(newDigests) > 0 {
		where = append(where, "new_data columns "+strings.Join(newDigests, ", "))
	}
	if len(oldDigests) > 0 {
		where = append(where, "old_data columns "+strings.Join(oldDigests, ", "))
	}
	return fmt.Errorf("%w: change %s of row %s in %s stores %s only as digests, so it cannot be "+
		"applied. changesync stores held and blocked changes whole, so this row was edited after it "+
		"was recorded. Write the whole values back into change_events, or reject the change if it "+
		"is the held one", ErrValueDigested, c.ID, c.RowKey, c.TableName, strings.Join(where, " and "))
}

func tuple(names []string, vals map[string]*string, missing change.Value) change.Tuple {
	t := make(change.Tuple, len(names))
	for i, name := range names {
		v, ok := vals[name]
		switch {
		case !ok:
			t[i] = missing
		case v == nil:
			t[i] = change.NullValue()
		default:
			t[i] = change.TextValue(*v)
		}
	}
	return t
}
